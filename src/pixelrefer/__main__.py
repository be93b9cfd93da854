from pixelrefer.cli.main import app

app()
