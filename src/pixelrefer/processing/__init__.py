"""Pure preprocessing: media -> patches, regions -> crops/masks, text -> token ids. Never imports the model."""
