"""Run-time hook (frozen app only): defer the body of `lance_namespace_urllib3_client`.

That package's `__init__` only re-exports names from its submodules, among them every generated
REST API class; building those (pydantic `validate_call` on each method) costs about a second
at import, on every start, although LanceDB on a local folder uses only the package's models.
Here the package module is created without running its `__init__`; its submodules import as
usual (`from lance_namespace_urllib3_client.models.x import Y`), and the first access to a name
of the package itself runs the real `__init__`, so nothing behaves differently, only later.
"""


def _defer_package(name: str) -> None:
    import importlib.util
    import sys

    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    module = importlib.util.module_from_spec(spec)

    def load_for_real(attr: str) -> object:
        if attr.startswith("__") and attr.endswith("__") and attr != "__all__":
            raise AttributeError(attr)  # probes such as __wrapped__: not names of the package
        del module.__getattr__
        spec.loader.exec_module(module)
        return getattr(module, attr)

    module.__getattr__ = load_for_real
    sys.modules[name] = module


_defer_package("lance_namespace_urllib3_client")
del _defer_package
