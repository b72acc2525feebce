"""WD14 tagging: SmilingWolf's ONNX taggers turned into ``<stem>.txt`` captions for a folder of photos.

Modules, one concern each: ``models`` (which files: registry, Hub, local folder), ``labels`` (selected_tags.csv),
``preprocess`` (photo -> tensor, as the model authors do it), ``postprocess`` (scores -> ordered caption tags,
caption merging), ``tagger`` (load once, batched inference overlapping decoding, write captions).
"""

from .models import DEFAULT_MODEL, REGISTRY, ModelFiles, ModelSpec, resolve_model
from .postprocess import Prediction, TagOptions, WriteMode
from .tagger import FileIssue, TagConfig, TaggedImage, Tagger, TagRun, load_tagger, tag_folder, unload_taggers

__all__ = [
    "DEFAULT_MODEL", "REGISTRY", "ModelFiles", "ModelSpec", "resolve_model",
    "Prediction", "TagOptions", "WriteMode",
    "FileIssue", "TagConfig", "TaggedImage", "Tagger", "TagRun", "load_tagger", "tag_folder", "unload_taggers",
]
