"""What stands in for modules a submission imports but the grading environment does not offer.

Installed in the worker (and in the student's local test run) before the submission is
imported, for the modules static analysis found in its imports:

- a **stand-in** for a tool that only logs or displays (wandb, tensorboard writers,
  ``google.colab``, IPython's display, ``tqdm.notebook``): every call is accepted and does
  nothing, so a training loop that calls ``wandb.log`` each epoch is still a training loop.
  ``wandb.config`` keeps what ``wandb.init(config=...)`` was given, as wandb does.
- a **placeholder** for any other module the environment lacks or does not allow: the import
  succeeds, and the first real use (a call, an index, a loop, a base class) raises
  :class:`UnavailableModuleError` naming the module, where the file imports it and what was
  used, so only the checks whose code needs the module fail.

Standard library only: this module ships in the student folder.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types

# Modules that only log or display: a name here covers its submodules (`google.colab.drive`).
LOGGING_TOOLS = ("wandb", "tensorboardX", "torch.utils.tensorboard", "google.colab", "IPython", "tqdm.notebook")


def logging_tool(module: str) -> str | None:
    """The entry of LOGGING_TOOLS that covers ``module``, or None."""
    return next((tool for tool in LOGGING_TOOLS if module == tool or module.startswith(tool + ".")), None)


class UnavailableModuleError(ModuleNotFoundError):
    """Raised when code uses a placeholder module."""


def install(stand_ins: dict[str, str] | None = None, placeholders: dict[str, str] | None = None,
            offered: tuple[str, ...] = ()) -> None:
    """``stand_ins``: LOGGING_TOOLS entry -> where the file imports it ("line 2");
    ``placeholders``: top-level module -> where the file imports it; ``offered``: the libraries
    the environment does offer, named in the placeholder's message."""
    if stand_ins or placeholders:
        sys.meta_path.insert(0, _Finder(stand_ins or {}, placeholders or {}, tuple(offered)))


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, stand_ins: dict[str, str], placeholders: dict[str, str], offered: tuple[str, ...]):
        self.stand_ins, self.placeholders, self.offered = stand_ins, placeholders, offered

    def find_spec(self, fullname, path=None, target=None):
        if self._covering(fullname) is None:
            # a parent of a substituted module (`google` of `google.colab`) that is not installed
            covered = any(name.startswith(fullname + ".") for name in [*self.stand_ins, *self.placeholders])
            if not covered or importlib.machinery.PathFinder.find_spec(fullname, path) is not None:
                return None
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def _covering(self, fullname: str) -> tuple[str, str] | None:
        for name in [*self.stand_ins, *self.placeholders]:
            if fullname == name or fullname.startswith(name + "."):
                return name, ("stand-in" if name in self.stand_ins else "placeholder")
        return None

    def create_module(self, spec):
        covering = self._covering(spec.name)
        if covering is None:
            return types.ModuleType(spec.name)  # an empty parent package
        name, kind = covering
        if kind == "placeholder":
            return _PlaceholderModule(spec.name, name, self.placeholders[name], self.offered)
        return _stand_in_module(spec.name)

    def exec_module(self, module):
        module.__path__ = []  # a package: `import google.colab.drive` and the like find their way here


# ---- stand-ins -----------------------------------------------------------------------------

class _Inert:
    """Accepts every call, attribute and item, iterates as empty, and does nothing."""

    def __init__(self, name: str = "stand-in"):
        object.__setattr__(self, "_name", name)

    def __call__(self, *args, **kwargs):
        return _Inert(f"{self._name}()")

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert(f"{self._name}.{name}")

    def __setattr__(self, name, value):
        pass

    def __getitem__(self, key):
        return _Inert(f"{self._name}[...]")

    def __setitem__(self, key, value):
        pass

    def __iter__(self):
        return iter(())

    def __len__(self):
        return 0

    def __bool__(self):
        return False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def __format__(self, spec):
        return ""

    def __repr__(self):
        return f"<stand-in {self._name}: does nothing while grading>"

    def __mro_entries__(self, bases):
        return (_InertBase,)  # `class Logger(SummaryWriter)`


class _InertBase:
    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert(name)


class _StandInModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Inert(f"{self.__name__}.{name}")

    def __repr__(self):
        return f"<stand-in for {self.__name__}: does nothing while grading>"


class _Config(dict):
    """``wandb.config``: a dict with attribute access, filled by ``wandb.init(config=...)``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def update(self, values=None, allow_val_change=None, **more):
        if values is not None and not hasattr(values, "keys"):
            values = vars(values)  # an argparse.Namespace
        super().update(values or {}, **more)

    def setdefaults(self, values):
        for key, value in dict(values).items():
            self.setdefault(key, value)


def _stand_in_module(name: str) -> types.ModuleType:
    module = _StandInModule(name)
    if name == "wandb":
        module.config = _Config()

        def init(*args, config=None, **kwargs):
            if config is not None:
                module.config.update(config)
            run = _Inert("wandb.run")
            object.__setattr__(run, "config", module.config)
            module.run = run
            return run

        module.init, module.run = init, None
    elif name == "IPython":
        return _ipython()
    elif name == "tqdm.notebook":
        try:  # the plain progress bar; the notebook one needs ipywidgets
            from tqdm import std
        except ImportError:
            return module
        module.tqdm, module.trange, module.tqdm_notebook = std.tqdm, std.trange, std.tqdm
    return module


class _IPythonModule(types.ModuleType):
    """``IPython`` as a plain Python process sees it when IPython is installed: no shell running
    (matplotlib and tqdm ask ``get_ipython()`` and ``version_info``), display functions that do
    nothing; nothing else, so that no library mistakes it for more."""


def _ipython() -> types.ModuleType:
    module = _IPythonModule("IPython")
    module.get_ipython = lambda: None
    module.version_info, module.__version__ = (8, 30, 0, ""), "8.30.0"
    module.display = _StandInModule("IPython.display")  # real IPython imports it in __init__
    module.embed = _Inert("IPython.embed")
    sys.modules.setdefault("IPython.display", module.display)
    return module


# ---- placeholders --------------------------------------------------------------------------

class _PlaceholderModule(types.ModuleType):
    def __init__(self, name: str, root: str, at: str, offered: tuple[str, ...]):
        super().__init__(name)
        self._placeholder = (root, at, offered)

    def __getattr__(self, name):
        if name.startswith("__") or name == "_placeholder":
            raise AttributeError(name)
        return _Missing(f"{self.__name__}.{name}", *self._placeholder)

    def __repr__(self):
        return f"<placeholder for {self.__name__}: `{self._placeholder[0]}` is not available while grading>"


class _Missing:
    """Something from a placeholder module: raises as soon as it is used."""

    def __init__(self, path: str, root: str, at: str, offered: tuple[str, ...]):
        self._about = (path, root, at, offered)

    def _fail(self, *args, **kwargs):
        path, root, at, offered = self._about
        libraries = f" ({', '.join(offered)} and the standard library)" if offered else ""
        raise UnavailableModuleError(
            f"`{path}` was used, but the grading environment does not offer `{root}` (your file imports it "
            f"at {at}); a placeholder stands in for it, so only code that uses it fails. Use only the "
            f"libraries the handout lists{libraries}.", name=root)

    def __getattr__(self, name):
        if name.startswith("__") or name == "_about":
            raise AttributeError(name)
        return _Missing(f"{self._about[0]}.{name}", *self._about[1:])

    __call__ = __getitem__ = __iter__ = __len__ = __enter__ = __mro_entries__ = _fail
    __add__ = __radd__ = __sub__ = __mul__ = __rmul__ = __truediv__ = __matmul__ = __float__ = __int__ = _fail

    def __repr__(self):
        return f"<placeholder for {self._about[0]}: `{self._about[1]}` is not available while grading>"
