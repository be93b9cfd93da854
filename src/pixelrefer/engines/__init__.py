"""Generation engines: "generate from input embeddings" behind one small protocol.

The vision tower and the region path stay ours (:meth:`PixelReferForConditionalGeneration.embed` turns a prompt
with its images and regions into input embeddings); an engine only runs the LLM on those embeddings. Two engines:

* :class:`TransformersEngine` (the default): transformers ``generate`` on our own model's LLM, in this process.
* :class:`VLLMEngine`: a client of a running vLLM OpenAI-compatible server (``/v1/completions`` with
  ``prompt_embeds``) that serves the LLM exported by ``pixelrefer export-llm`` (continuous batching, paged KV
  cache). It works across environments: vLLM lives in its own virtualenv and process.

See ``docs/serving.md``.
"""

from pixelrefer.engines.base import ENGINES, EmbedsPrompt, Engine, check_engine_options
from pixelrefer.engines.transformers_engine import TransformersEngine
from pixelrefer.engines.vllm_client import VLLMEngine

__all__ = ["ENGINES", "EmbedsPrompt", "Engine", "TransformersEngine", "VLLMEngine", "check_engine_options"]
