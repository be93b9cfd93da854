"""Recipes: whole runs built on the trainer's public API (``pixelrefer.train``), kept apart from the library.

The bundled nano models are trained by the recipe configs of ``recipes/configs`` (``nano``, ``nano-lite``,
``tiny-smoke``): build the synthetic dataset (:mod:`pixelrefer.recipes.synthetic`), train its tokenizer,
pretrain the vision tower on region labels (:mod:`pixelrefer.recipes.vision` over the rendered regions of
:mod:`pixelrefer.recipes.regions`, a stage of the one trainer loop
with its own objective), then train PixelRefer (:func:`pixelrefer.recipes.run.run`). Each step is skipped when
its output is on disk. The library (model, processing, train, inference, ...) never imports this package; the
CLI does.
"""
