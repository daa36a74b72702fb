"""Networks given to the modules as objects, and written into checkpoints as specs.

The CR-GAN, SPGAN and re-id modules do not take their networks' widths and depths as flat arguments:
each network is *injected*, as a factory the module calls (a class, or a class with some of its
arguments bound). In a config that is a nested ``class_path`` object, with the network class's
own arguments and defaults::

    model:
      class_path: crgan_lightning.modules.crgan.CRGANModule
      init_args:
        generator:
          class_path: crgan_lightning.models.generator.DualPathGenerator
          init_args: {base_channels: 16, target_skips: true}

and on the command line ``--model.init_args.generator.init_args.base_channels=32``. In Python, a
module also takes the class itself, a ``functools.partial`` of it, a spec dict
``{"class_path": ..., "init_args": {...}}`` or a dict of the default class's arguments
(``generator={"base_channels": 16}``).

Every network class here records the arguments it was built with (:func:`init_arguments`), so a
module stores each network as a spec dict in its hyper-parameters (:func:`network_spec`) and
:mod:`crgan_lightning.networks` rebuilds the same network from a checkpoint (:func:`build_network`).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from typing import Any, Callable, Optional, Protocol

from torch import nn

from ..errors import ConfigError

#: What the CLI accepts for a network without data-dependent arguments (generator, discriminator,
#: SiaNet): a ``class_path`` object, called with no argument to build one network.
NetworkFactory = Optional[Callable[[], nn.Module]]
#: What the CLI accepts for the identity/camera classifier: a ``class_path`` object called with
#: the number of source identities and of target cameras (linked from the DataModule).
ClassifierFactory = Optional[Callable[[int, int], nn.Module]]


class ReIDNetFactory(Protocol):
    """What the CLI accepts for a re-id network: a ``class_path`` object called with the keyword
    ``num_classes``, the number of source identities (linked from the DataModule)."""

    def __call__(self, *, num_classes: int) -> nn.Module: ...


#: The argument a re-id module passes when it builds its network (left out of the network's spec).
REID_CALL_ARGS = ("num_classes",)


def init_arguments(frame_locals: dict) -> dict[str, Any]:
    """The constructor arguments in ``locals()`` taken at the top of an ``__init__`` (``self`` and
    the compiler's ``__class__`` cell left out): what :func:`network_spec` writes."""
    return {k: v for k, v in frame_locals.items() if k not in ("self", "__class__")}


def class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def network_spec(net: nn.Module, call_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"class_path": ..., "init_args": {...}}`` of a network built by a class of the library
    (or any class setting ``self.init_args = init_arguments(locals())``); the arguments named in
    ``call_args`` (those the module passes when it calls the factory) are left out."""
    recorded = getattr(net, "init_args", None)
    if not isinstance(recorded, dict):
        raise ConfigError(f"{class_path(type(net))} does not record its arguments, so a checkpoint could not rebuild "
                          "it; set self.init_args = init_arguments(locals()) first thing in its __init__")
    return {"class_path": class_path(type(net)),
            "init_args": {k: v for k, v in recorded.items() if k not in call_args}}


def resolve_class(path: str, example: type, what: str, base: type = nn.Module) -> type:
    """The ``base`` subclass (a ``torch.nn.Module`` class by default) named by ``path``. Only modules
    of this library, of ``torch`` or already imported ones are imported (a checkpoint cannot make the
    library import code); a path without a module is refused with ``example`` (the default class) as
    the dotted path to give."""
    module_name, _, name = path.rpartition(".")
    if not module_name:
        raise ConfigError(f"{what} class_path={path!r}; expected a dotted path such as {class_path(example)}")
    if module_name not in sys.modules and not module_name.startswith(("crgan_lightning.", "torch.")):
        raise ConfigError(f"{what} class_path={path!r}: module {module_name} is not imported; import it before "
                          "building or loading the model")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what} class_path={path!r} does not name a class ({exc})") from None
    if not (inspect.isclass(cls) and issubclass(cls, base)):
        raise ConfigError(f"{what} class_path={path!r} is not a {base.__module__}.{base.__qualname__} class")
    return cls


def factory_from_spec(spec: Any, example: type, base: type, what: str) -> Any:
    """An optimiser or scheduler factory given in Python as a spec dict ``{"class_path", "init_args"}``
    (as a resolved config holds it): ``functools.partial(class, **init_args)``, the class a ``base``
    subclass; any other value is returned as it is."""
    if not (isinstance(spec, dict) and "class_path" in spec):
        return spec
    unknown = set(spec) - {"class_path", "init_args"}
    if unknown:
        raise ConfigError(f"{what} spec has keys {sorted(unknown)}; expected class_path and init_args")
    return functools.partial(resolve_class(spec["class_path"], example, what, base), **(spec.get("init_args") or {}))


def build_network(spec: Any, default: type, what: str, *call_args: Any, **call_kwargs: Any) -> nn.Module:
    """The network ``spec`` describes, called with ``call_args`` and ``call_kwargs`` (a classifier's
    identity and camera counts, a re-id network's ``num_classes``). ``spec``: None (``default()``), a
    class or factory, a spec dict ``{"class_path", "init_args"}`` (as a checkpoint keeps it) or a
    dict of ``default``'s arguments."""
    if spec is None:
        factory, kwargs = default, {}
    elif isinstance(spec, dict) and "class_path" in spec:
        unknown = set(spec) - {"class_path", "init_args"}
        if unknown:
            raise ConfigError(f"{what} spec has keys {sorted(unknown)}; expected class_path and init_args")
        factory, kwargs = resolve_class(spec["class_path"], default, what), dict(spec.get("init_args") or {})
    elif isinstance(spec, dict):
        factory, kwargs = default, dict(spec)
    elif isinstance(spec, nn.Module):
        raise ConfigError(f"{what} is a built {type(spec).__name__}; give its class, a functools.partial of it or a "
                          "dict of its arguments: the module builds its own networks (SPGAN builds two of each)")
    elif callable(spec):
        factory, kwargs = spec, {}
    else:
        raise ConfigError(f"{what}={spec!r}; expected a network class, a factory, a class_path spec or a dict of "
                          f"{default.__name__} arguments")
    given = sorted(set(kwargs) & set(call_kwargs))
    if given:
        raise ConfigError(f"{what} sets {', '.join(given)}; expected it left out (the module passes it from the data)")
    try:
        net = factory(*call_args, **call_kwargs, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    if not isinstance(net, nn.Module):
        raise ConfigError(f"{what} factory returned {type(net).__name__}; expected a torch.nn.Module")
    return net


def for_trained_weights(spec: dict, default: type, what: str = "network") -> dict:
    """``spec`` (a ``{"class_path", "init_args"}`` dict) for a network about to receive a
    checkpoint's weights: ``pretrained: false`` and ``pretrained_path: null`` where its class takes
    them (the checkpoint's weights replace ImageNet ones, so none is downloaded or read)."""
    params = inspect.signature(resolve_class(spec["class_path"], default, what)).parameters
    init_args = dict(spec.get("init_args") or {})
    init_args.update({k: v for k, v in (("pretrained", False), ("pretrained_path", None)) if k in params})
    return {**spec, "init_args": init_args}
