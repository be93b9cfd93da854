"""The web demo (Gradio; ``pip install pixelrefer[demo]``): ``pixelrefer.demo.app.build_demo(pipeline, segmenter)``."""
