"""The error raised for media that cannot be read or written."""


from pixelrefer.errors import MediaError

__all__ = ["MediaError"]
