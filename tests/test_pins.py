"""Every place the project bends Rasa or a library under it, in one list, each pinned by the sha256
of the installed source it replaces, wraps, overrides or relies on.

A Rasa (or Sanic, python-engineio) upgrade that changes any of them fails here, all at once, with
the list of what to read again, instead of misbehaving quietly. The sources are read from the
installed files (not from the live objects, which the patches may have replaced in this process).
Supported: exactly the versions in requirements.lock (Rasa 3.6.21, rasa-sdk 3.6.2, Sanic 21.12.2,
python-engineio 4.15.1, python-socketio 5.18.1).
"""

import ast
import hashlib
import importlib.machinery
import sys
from pathlib import Path

from core import http_guard
from runtime import rasa_patches

# "module:Qualified.name" -> (sha256 of its installed source, where the project bends it).
BENDS: dict[str, tuple[str, str]] = {
    # replaced (runtime/rasa_patches.py, applied where the Rasa server starts)
    "rasa.core.actions.action:RemoteAction._validate_action_result": (
        rasa_patches.VALIDATE_ACTION_RESULT_SHA256,
        "runtime/rasa_patches.py",
    ),
    "rasa.core.policies.rule_policy:RulePolicy._get_possible_keys": (
        rasa_patches.GET_POSSIBLE_KEYS_SHA256,
        "runtime/rasa_patches.py",
    ),
    "rasa.shared.core.events:Event.resolve_by_type": (
        rasa_patches.RESOLVE_BY_TYPE_SHA256,
        "runtime/rasa_patches.py (with Event.__init_subclass__, which Event does not define)",
    ),
    "rasa.utils.tensorflow.models:RasaModel._rasa_predict": (
        rasa_patches.RASA_PREDICT_SHA256,
        "runtime/rasa_patches.py",
    ),
    "rasa.utils.tensorflow.models:RasaModel.load": (
        rasa_patches.MODEL_LOAD_SHA256,
        "runtime/rasa_patches.py",
    ),
    "rasa.engine.runner.dask:DaskGraphRunner.run": (
        rasa_patches.GRAPH_RUN_SHA256,
        "runtime/rasa_patches.py",
    ),
    "rasa.utils.endpoints:EndpointConfig.session": (
        rasa_patches.ENDPOINT_SESSION_SHA256,
        "runtime/rasa_patches.py",
    ),
    # wrapped (runtime/rasa_server.py)
    "rasa.core.run:load_agent_on_start": (
        "b23e12447febeb64dfe0e78f545c37affae1059858280485b1094707a2704214",
        "runtime/rasa_server.py: trimmed_after_loading",
    ),
    "rasa.core.run:close_resources": (
        "bc3d36e8149e84cd906082694203f0f78bbdb09544be8753af472ff59cc284e9",
        "runtime/rasa_server.py: closing_pooled_sessions",
    ),
    "rasa.core.run:configure_app": (
        "72da30416f74c6488a1bbdae9878467bdc7ecd6b5a46b336220aadafd8b2f41a",
        "runtime/rasa_server.py: without_version",
    ),
    # the model pulled from the model server (runtime/model_pulling.py)
    "rasa.core.agent:load_agent": (
        "abc2a4cb13cbbd2b630bab929d3a13c3732cfa3f2384b535787cf4d8c615545a",
        "runtime/model_pulling.py: loading_local_first",
    ),
    "rasa.core.agent:_pull_model_and_fingerprint": (
        "373d0bc12bb9a25c99349a0c9db3f41f43abcfbf00860889a6efaebdd70849a3",
        "runtime/model_pulling.py: update_from_server calls it",
    ),
    "rasa.core.agent:Agent.load_model": (
        "f4c1ab4c5c7af6349384fc0a2d3a1cffdc5f277f08378d07fd0cd247cd4d5fa7",
        "runtime/model_pulling.py: swap does what it does after building the processor",
    ),
    "rasa.core.agent:Agent._set_fingerprint": (
        "ee1ee14d0bd0ac96223d9c1bafb0bbeb403b01df0aca258d1fdeb689781f478c",
        "runtime/model_pulling.py: the local model's fingerprint is its SHA-256",
    ),
    # replaced by the supervisor (runtime/workers.py), which calls serve() and builds its protocol
    "sanic.server.runners:serve_multiple": (
        "21e61cf242a9aa90dd7cef07c2832c3f6b559b34e10e18da7e95cfc3a18ee7cb",
        "runtime/workers.py: serve_supervised",
    ),
    "sanic.server.runners:serve": (
        "1588e933e436c5c3eb9eba1b78ea7c721215ac22da7274e8a3d8e3055f7171c8",
        "runtime/workers.py: run_worker, listen_on_unix_socket",
    ),
    "sanic.server.runners:_build_protocol_kwargs": (
        "df364f22d706e31f9870ad90690125ac3d65b0dc6d76fe502134cd0edd3dce80",
        "runtime/workers.py: listen_on_unix_socket",
    ),
    "sanic.server.socket:bind_unix_socket": (
        "781e6fc2fb8d9c693e4414840ac96c6a00228cf3c3ee2584a0182cbcb4b42398",
        "runtime/workers.py: listen_on_unix_socket",
    ),
    # rewritten or overridden channels (channels/)
    "rasa.core.channels.socketio:SocketIOInput.blueprint": (
        "1246d69fa05c3b1f3dcc77d4ef78e992674cc3d9f7077e9793fd578563b9ee73",
        "channels/socketio.py: WidgetSocketIOInput.blueprint, rewritten",
    ),
    "rasa.core.channels.socketio:SocketBlueprint.__init__": (
        "94295faa265930680301cd8e76310b1147d024710a103d2cc1b7a0ebcec65273",
        "channels/socketio.py: attaches sio.eio.handle_request as the route",
    ),
    "rasa.core.channels.rest:RestInput.blueprint": (
        "886a9338e4c2505a0d2e70242c27887311d1529a18037dbd6d1dbfe77f699d0f",
        "channels/rest.py: ResilientRestInput.blueprint, rewritten",
    ),
    "engineio.async_server:AsyncServer.handle_request": (
        "1a8c878e35166cfe868d2cef40cdeb33af620541363a705c4dd2eea76c0f27af",
        "channels/socketio.py: guarded in front of it",
    ),
    "engineio.base_server:BaseServer.generate_id": (
        "b6a591454237c0bb4e57dfef897c3d1f45477d0582474a4f48df35d12a552c25",
        "channels/sibling_relay.py: tagged_id instead",
    ),
    "engineio.async_drivers.sanic:create_route": (
        "828f8551b66a5afce1b1ff8327d86af41b22be62ea58813b4e3ec22186c95bbd",
        "channels/socketio.py: the route the guard is attached to",
    ),
    "sanic.server.protocols.websocket_protocol:WebSocketProtocol.websocket_handshake": (
        "b3cea583e3180d301270d503fb94f22ca4ab1e2a5c59ea306f58e12570ddefc0",
        "channels/sibling_relay.py: accepts a relayed WebSocket",
    ),
    # overridden private methods of the tracker store (stores/tracker_store.py)
    "rasa.core.tracker_store:SQLTrackerStore._additional_events": (
        "d22f99eb863acb07afee63d9fe3a04ca8464251e67a43eb7d36c2d65ffc1653f",
        "stores/tracker_store.py: MaskingSQLTrackerStore._additional_events",
    ),
    "rasa.core.tracker_store:SQLTrackerStore.save": (
        "57165e46eab3de0866e77f03df0bf7fd5eac2c1de617ed431b934c9a4edfeef6",
        "stores/tracker_store.py: MaskingSQLTrackerStore.save",
    ),
    "rasa.core.tracker_store:SQLTrackerStore.retrieve": (
        "0d99846daced97d3dee3fae5eecfef6179c7afaeb872b68bbe064bbd65223641",
        "stores/tracker_store.py: MaskingSQLTrackerStore.retrieve",
    ),
    "rasa.core.tracker_store:SQLTrackerStore.retrieve_full_tracker": (
        "22234b03f47fbdd3878838d7110acd00d1ba77185ffbdf9440ff77fcb1115e79",
        "stores/tracker_store.py: MaskingSQLTrackerStore.retrieve_full_tracker",
    ),
    "rasa.core.tracker_store:SQLTrackerStore._retrieve": (
        "c8adbf6f4b61ddd1124690944ebdf2ebc82d0723bd07c6704caab0b80120a0ef",
        "stores/tracker_store.py: read by the overrides above",
    ),
}


def module_file(module: str) -> Path:
    """The installed file of `module`, found without importing it (importing Rasa's packages
    would load TensorFlow)."""
    top, *rest = module.split(".")
    spec = importlib.machinery.PathFinder.find_spec(top, sys.path)
    assert spec is not None and spec.submodule_search_locations, f"{top} is not installed"
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise AssertionError(f"{module} is not installed")


def installed_source(name: str) -> str:
    """The source of `module:Qualified.name` as the installed file has it, decorators included
    (the lines inspect.getsource gives), read without importing the module."""
    module, _, qualified = name.partition(":")
    path = module_file(module)
    text = path.read_text(encoding="utf-8")
    node: ast.AST = ast.parse(text)
    for part in qualified.split("."):
        found = [
            child
            for child in ast.iter_child_nodes(node)
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and child.name == part
        ]
        assert found, f"{name}: no {part} in {path}"
        node = found[-1]  # the last definition wins, as at import
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    lines = text.splitlines(keepends=True)
    return "".join(lines[first - 1 : node.end_lineno])


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_every_bend_of_rasa_and_its_libraries_is_the_one_pinned() -> None:
    changed = [
        f"{name} (bent in {where})"
        for name, (pinned, where) in BENDS.items()
        if sha256(installed_source(name)) != pinned
    ]
    assert changed == [], "changed since pinned; read each again:\n" + "\n".join(changed)


def test_the_pins_are_read_as_rasa_patches_reads_them() -> None:
    """The file-based reading gives the same digest as inspect.getsource on the live original,
    so the two lists cannot disagree about what a pin means."""
    import sanic.server.runners

    assert rasa_patches.source_sha256(sanic.server.runners.serve) == sha256(
        installed_source("sanic.server.runners:serve")
    )
    # a source that is not the pinned one is caught
    assert sha256(installed_source("rasa.core.run:serve_application")) not in {
        pinned for pinned, _ in BENDS.values()
    }


def test_event_defines_no_init_subclass_of_its_own() -> None:
    """rasa_patches replaces Event.__init_subclass__, which Rasa 3.6.21 leaves to object's."""
    assert "def __init_subclass__" not in installed_source("rasa.shared.core.events:Event")


def test_sanic_s_pins_are_listed_beside_these() -> None:
    """core/http_guard.py pins the Sanic sources it wraps (checked in a fresh process by
    tests/test_http_guard.py, as Sanic recompiles them when an app starts)."""
    assert set(http_guard.PINNED) >= {"Http.http1_request_header", "Http.read"}
