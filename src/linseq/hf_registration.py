"""Register linseq's causal LM with transformers' Auto classes as soon as both packages are imported.

``import linseq`` must stay fast for users who only want the ops, so it does not import transformers (seconds).
Instead it registers right away when transformers is already imported, or else installs a one-shot import hook
that registers right after transformers is first imported. Either way, after ``import linseq``,
``AutoModelForCausalLM.from_pretrained(dir)`` finds linseq checkpoints.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys


def _register() -> None:
    try:
        import linseq.models  # noqa: F401  (importing it registers the model; absent transformers is fine)
    except ImportError:
        pass


class _RegisterAfterTransformers(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "transformers":
            return None
        sys.meta_path.remove(self)  # one shot; the regular finders locate the package
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register()

        spec.loader.exec_module = exec_then_register
        return spec


def install() -> None:
    """Register now if transformers is loaded, else when it is."""
    if "transformers" in sys.modules:
        _register()
    elif not any(isinstance(f, _RegisterAfterTransformers) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterTransformers())
