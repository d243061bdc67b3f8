"""The Ray runtime_env plugin of pagemesh: every node that runs a job's
workers gets a node peer, and the workers' ``pagemesh`` filesystems use it.

A cluster admin registers the plugin where Ray starts (every node)::

    RAY_RUNTIME_ENV_PLUGINS='[{"class":"pagemesh.ray.Plugin"}]' ray start ...

and a job asks for it::

    ray.init(runtime_env={"pagemesh": {
        "cache_dir": "/mnt/nvme/pagemesh", "disk_capacity": "200G",
        "env": {"AWS_REGION": "eu-west-1"}}})

On each node, the first time a worker needs this runtime env, Ray's
runtime env agent calls :meth:`Plugin.create`: it reuses the node peer
running on ``cache_dir`` or starts ``pagemeshd`` detached (see
:func:`pagemesh.daemon.ensure_node`); the daemon outlives the job, and the
next job reuses it. :meth:`Plugin.modify_context` then sets the workers'
``PAGEMESH_CACHE_DIR`` (and the variables of ``env``), so a
``PagemeshFileSystem`` unpickled there attaches to that node peer.

Keys of the ``"pagemesh"`` dict: ``cache_dir``, ``disk_capacity``,
``ram_capacity``, ``page_size``, ``eviction``, ``meta_ttl_ms``,
``readahead_pages``, ``io_threads``, ``config`` (a pagemeshd INI file),
``log_file``, ``log_level``, ``env`` (variables for the daemon and the
workers: origin credentials, ``AWS_ENDPOINT_URL``...), ``pagemeshd`` (path
of the daemon), ``start_timeout_s``; and the mesh options ``listen``,
``seeds`` (a string or a list), ``cluster_key_file``, ``cluster_id``,
``transport``, ``transport_listen``, ``zone``, ``replicas``,
``request_timeout_ms``, ``insecure_data``, passed on as pagemeshd flags
(refused, naming the flag, by a pagemeshd whose ``--help`` lacks it).
Options other than ``cache_dir`` and ``env`` only apply when the daemon
is started: a running node peer keeps its own, and so its credentials.
``listen`` differs per node: give it in a ``config`` INI file on each
node, or set ``PAGEMESH_LISTEN`` in the environment of ``ray start``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Dict, List, Mapping

from ray._private.runtime_env.plugin import RuntimeEnvPlugin

from . import daemon
from .peer import parse_size

PLUGIN_NAME = "pagemesh"
_GENERAL_KEYS = {"cache_dir", "env", "pagemeshd", "start_timeout_s"}
ALLOWED_KEYS = (_GENERAL_KEYS | set(daemon.DAEMON_FLAGS)
                | set(daemon.DAEMON_ENV) | set(daemon.MESH_FLAGS))


def _config(runtime_env: Mapping[str, Any]) -> Dict[str, Any]:
    config = runtime_env.get(PLUGIN_NAME)
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise TypeError("runtime_env['pagemesh'] must be a dict, not %s"
                        % type(config).__name__)
    return dict(config)


def validate_config(config: Mapping[str, Any]) -> None:
    """Raise ValueError/TypeError for a runtime_env['pagemesh'] dict that
    cannot work (unknown key, bad size, unsupported mesh option)."""
    unknown = sorted(set(config) - ALLOWED_KEYS)
    if unknown:
        raise ValueError(
            "runtime_env['pagemesh']: unknown option(s) %s; known: %s"
            % (", ".join(unknown), ", ".join(sorted(ALLOWED_KEYS))))
    for key in daemon.SIZE_OPTIONS:
        if config.get(key) is not None:
            parse_size(config[key])
    if config.get("eviction") not in (None, "stable", "lru"):
        raise ValueError("runtime_env['pagemesh']['eviction']: %r: use "
                         "'stable' or 'lru'" % (config["eviction"],))
    for key in ("meta_ttl_ms", "readahead_pages", "io_threads", "replicas",
                "request_timeout_ms"):
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, int) or value < 0):
            raise ValueError("runtime_env['pagemesh'][%r]: %r is not a "
                             "count (a non-negative integer)" % (key, value))
    timeout = config.get("start_timeout_s")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(
            timeout, (int, float)) or timeout <= 0):
        raise ValueError("runtime_env['pagemesh']['start_timeout_s']: %r is "
                         "not a positive number of seconds" % (timeout,))
    for key in daemon.BOOLEAN_FLAGS:
        if config.get(key) is not None:
            daemon.parse_bool(key, config[key])
    env = config.get("env") or {}
    if not isinstance(env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in env.items()):
        raise TypeError("runtime_env['pagemesh']['env'] must map str to str")
    mesh = [k for k in daemon.MESH_FLAGS if config.get(k) is not None]
    if mesh:
        program = daemon.find_program("pagemeshd", config.get("pagemeshd"))
        daemon.daemon_args({k: config[k] for k in mesh}, program)


def _cache_dir(config: Mapping[str, Any]) -> str:
    return os.path.abspath(os.path.expanduser(
        config.get("cache_dir") or daemon.default_cache_dir()))


def _daemon_options(config: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in config.items()
            if k in daemon.DAEMON_FLAGS or k in daemon.MESH_FLAGS
            or k in daemon.DAEMON_ENV}


class Plugin(RuntimeEnvPlugin):
    """runtime_env key "pagemesh": a node peer on every node of the job."""

    name = PLUGIN_NAME

    @staticmethod
    def validate(runtime_env_dict: Mapping[str, Any]) -> None:
        validate_config(_config(runtime_env_dict))

    def get_uris(self, runtime_env: Any) -> List[str]:
        # No URI: create() runs for every runtime env set up, so a node
        # peer that died since the last job is started again.
        return []

    async def create(self, uri: Any, runtime_env: Any, context: Any,
                     logger: logging.Logger = logging.getLogger(__name__)
                     ) -> float:
        config = _config(runtime_env)
        cache_dir = _cache_dir(config)
        loop = asyncio.get_running_loop()
        status = await loop.run_in_executor(None, lambda: daemon.ensure_node(
            cache_dir, _daemon_options(config), config.get("env"),
            config.get("pagemeshd"), float(config.get("start_timeout_s",
                                                      30))))
        logger.info("pagemesh: %s node peer %s on %s",
                    "started" if status.get("started") else "reusing",
                    status.get("node_pid"), cache_dir)
        return 0

    def modify_context(self, uris: List[str], runtime_env: Any,
                       context: Any,
                       logger: logging.Logger = logging.getLogger(__name__)
                       ) -> None:
        config = _config(runtime_env)
        if not config and PLUGIN_NAME not in runtime_env:
            return
        context.env_vars.update(config.get("env") or {})
        context.env_vars["PAGEMESH_CACHE_DIR"] = _cache_dir(config)

    def delete_uri(self, uri: str, logger: logging.Logger) -> float:
        # The node peer outlives jobs (other jobs may share it); nothing
        # to delete.
        return 0
