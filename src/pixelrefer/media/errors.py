"""The error raised for media that cannot be read or written."""


class MediaError(ValueError):
    """An image or video cannot be read (missing, unreadable, unsupported, zero frames) or written."""
