"""The driver schedules trials and writes tables; it never imports torch (the trials do)."""
import subprocess
import sys

import yaml


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}; import sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


def test_the_runner_imports_without_torch():
    assert "torch" not in _modules_after("import simclr_sweep.runner, simclr_sweep.cli")


def test_a_study_validated_in_a_child_leaves_torch_out_of_this_process(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "metric": "knn_top1", "trials": 2,
                                    "parameters": {"temperature": {"values": [0.2, 0.5]}}}))
    code = (f"from simclr_sweep.study import load_study_in_child; "
            f"s = load_study_in_child({str(path)!r}); assert s.epochs == 8 and s.trials == 2")
    assert "torch" not in _modules_after(code)
