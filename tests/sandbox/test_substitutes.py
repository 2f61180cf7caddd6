"""Stand-ins and placeholders (substitutes.py), each exercised in a fresh Python process, since
installing them changes that process's imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


def run(code: str, stand_ins=None, placeholders=None) -> subprocess.CompletedProcess:
    prelude = ("from autograder.sandbox import substitutes\n"
               f"substitutes.install({stand_ins or {}!r}, {placeholders or {}!r}, ('torch', 'numpy'))\n")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


def test_wandb_accepts_every_call_and_keeps_the_config_it_was_given():
    done = run("""
        import wandb
        run = wandb.init(project="hw3", config={"lr": 0.01, "epochs": 3})
        for epoch in range(wandb.config.epochs):
            wandb.log({"loss": 1.0 / (epoch + 1)}); run.log({"epoch": epoch})
        wandb.watch(object(), log="all"); table = wandb.Table(columns=["a"]); table.add_data(1)
        wandb.config.update({"batch": 8})
        print(run.config.lr, wandb.config["batch"], bool(wandb.run), f"[{wandb.run.name}]")
        wandb.finish()
    """, stand_ins={"wandb": "line 1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0.01", "8", "False", "[]"]


def test_colab_tensorboard_and_ipython_display_do_nothing_and_matplotlib_still_works():
    done = run("""
        from google.colab import drive, files
        from google.colab.patches import cv2_imshow
        drive.mount("/content/drive"); cv2_imshow(None); files.download("x.png")
        from torch.utils.tensorboard import SummaryWriter
        class Logger(SummaryWriter):
            pass
        with SummaryWriter("runs") as writer:
            writer.add_scalar("loss", 1.0, 0)
        Logger("runs").close()
        from IPython.display import clear_output, display, HTML
        import IPython
        clear_output(wait=True); display(HTML("<b>✓</b>"))
        assert IPython.get_ipython() is None
        import matplotlib; matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(4, 2)); ax[0].plot([1, 2]); fig.savefig("/dev/null", format="png")
        from tqdm.notebook import tqdm, trange
        print(sum(tqdm(range(3), disable=True)), list(trange(2, disable=True)))
    """, stand_ins={"google.colab": "line 1", "torch.utils.tensorboard": "line 4", "IPython": "line 11",
                    "tqdm.notebook": "line 19"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "[0,", "1]"]


def test_a_placeholder_imports_and_raises_on_use_naming_module_and_import_line():
    done = run("""
        import sklearn.metrics
        from sklearn.utils.extmath import softmax
        import sklearn as sk
        print(repr(sk.metrics))
        try:
            softmax([1.0])
        except ModuleNotFoundError as error:
            print(type(error).__name__, error.name, "|", error)
    """, placeholders={"sklearn": "cell 3, line 2"})
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith("<placeholder for sklearn.metrics")
    assert second.startswith("UnavailableModuleError sklearn | `sklearn.utils.extmath.softmax` was used")
    assert "imports it at cell 3, line 2" in second and "(torch, numpy and the standard library)" in second


@pytest.mark.parametrize("use", ["sk.Model()", "class M(sk.Base): pass", "sk.data[0]", "list(sk.items)", "sk.x + 1"])
def test_every_kind_of_use_of_a_placeholder_raises(use):
    done = run(f"import sklearn as sk\n{use}\n", placeholders={"sklearn": "line 1"})
    assert done.returncode == 1 and "UnavailableModuleError" in done.stderr and "`sklearn`" in done.stderr


def test_without_substitutes_the_same_imports_fail():
    """The tests above prove something: the modules are not importable here as they are."""
    done = subprocess.run([sys.executable, "-c", "import no_such_module_for_the_test"], capture_output=True, text=True)
    assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr
    done = run("import no_such_module_for_the_test as m\nprint(repr(m))",
               placeholders={"no_such_module_for_the_test": "line 1"})
    assert done.returncode == 0 and "placeholder" in done.stdout
