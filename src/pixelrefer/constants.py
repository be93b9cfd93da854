"""Special tokens and named numeric constants of the PixelRefer format, defined once."""

IMAGE_TOKEN = "<image>"
VIDEO_TAG = "<video>"
REGION_PLACEHOLDER = "<region>"  # what users write
REGION_TOKEN = "<REGION>"  # what the model sees, one per object token
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
END_OF_TEXT = "<|endoftext|>"
STREAM_START = "<|stream_start|>"
STREAM_END = "<|stream_end|>"
SPECIAL_TOKENS = (END_OF_TEXT, IM_START, IM_END, IMAGE_TOKEN, STREAM_START, STREAM_END, REGION_TOKEN)

IGNORE_INDEX = -100

# default answer length of the interactive front-ends (CLI, server, demo); the library's GenerationConfig keeps 256
DEFAULT_ANSWER_TOKENS = 128

PATCH_SIZE = 14
PATCH_AREA = PATCH_SIZE * PATCH_SIZE
CROP_MARGIN_PX = 2 * PATCH_SIZE  # context kept around a region's box

# sides of PixelRefer-Lite's whole-frame and local-crop views (the defaults of PixelReferConfig and CropSpec)
LITE_GLOBAL_VIEW_SIZE = 336
LITE_LOCAL_VIEW_SIZE = 224

VIDEO_DIFF_THRESHOLD = 0.1  # mean |Δpixel| (in 0..255 units of the normalised values) below which a token is dropped
VIDEO_MIN_TOKENS_PER_FRAME = 1

# largest weight file `pixelrefer convert` writes: huggingface_hub's default (transformers 4's; transformers 5 uses 50GB)
DEFAULT_MAX_SHARD_SIZE = "5GB"
