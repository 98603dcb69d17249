"""`softprompt serve` (the prompt server) and `softprompt client ...` (talk to one).

Register in cli/main.py:

    from softprompt.cli.serve import client_app, serve_command
    app.command("serve")(serve_command)
    app.add_typer(client_app, name="client")
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from softprompt.errors import SoftPromptError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class CommandError(SoftPromptError):
    """A user-facing error of `serve` / `client`: cli.main prints it in one line, exit 2."""


def _fail(message: str) -> None:
    raise CommandError(message)


def serve_command(
    prompts: Annotated[str, typer.Option("--prompts", help="Prompt store: a folder of prompt files (*.safetensors; name = file stem; created if missing) or an fsspec URL (s3://bucket/prefix, gs://...).")],
    model: Annotated[str, typer.Option("--model", help="Frozen model: built-in name (smollm2, gemma3-270m), HF id, folder or .gguf.")] = "smollm2",
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", help="Most rows (inputs) per forward pass.")] = 32,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", help="Longest a request waits for others to share its batch.")] = 5.0,
    batching: Annotated[str, typer.Option("--batching", help="'mixed': any prompts in one batch; 'per-task': one prompt per batch (for comparison).")] = "mixed",
    admin_token: Annotated[Optional[str], typer.Option("--admin-token", envvar="SOFTPROMPT_ADMIN_TOKEN", help="Bearer token for uploading/deleting prompts (disabled without it).")] = None,
    api_token: Annotated[Optional[str], typer.Option("--api-token", envvar="SOFTPROMPT_API_TOKEN", help="Bearer token required for inference and listing (open without it).")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")] = "cpu",
    dtype: Annotated[str, typer.Option("--dtype", help="auto, float32, bfloat16 or float16.")] = "auto",
    max_input_chars: Annotated[int, typer.Option("--max-input-chars", help="Longest input/label/target string (413 above).")] = 4096,
    max_inputs_per_request: Annotated[int, typer.Option("--max-inputs-per-request", help="Most inputs per request (413 above).")] = 64,
    max_upload_bytes: Annotated[int, typer.Option("--max-upload-bytes", help="Largest prompt file accepted by PUT (413 above).")] = 16 * 1024 * 1024,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens-limit", help="Largest max_new_tokens a request may ask for.")] = 256,
    threads: Annotated[Optional[int], typer.Option("--threads", help="torch CPU threads (default: torch's choice).")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")] = "info",
    store_poll_s: Annotated[float, typer.Option("--store-poll-s", help="Seconds between re-listings of the prompt store, to pick up changes made by other servers/replicas (0: only on a miss).")] = 2.0,
    require_if_match: Annotated[bool, typer.Option("--require-if-match", help="Uploads/deletes without If-Match (or If-None-Match: *) get 428.")] = False,
    replicas: Annotated[int, typer.Option("--replicas", help="Model replicas. 1: one process, no Ray; N > 1: Ray Serve with N replicas over the same store (needs softprompt[serve-ray]).")] = 1,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="Serve on this Ray cluster (auto, ray://host:10001) instead of starting a local one; implies Ray Serve.")] = None,
    replica_cpus: Annotated[float, typer.Option("--replica-cpus", help="With Ray Serve: CPUs Ray reserves per replica (also its torch threads unless --threads).")] = 1.0,
) -> None:
    """Serve every prompt in a folder (or an s3:// / gs:// store) on one frozen model, batching requests
    across prompts; --replicas N serves the same API from N Ray Serve replicas."""
    import torch
    import uvicorn

    from softprompt.core.loading import load_model
    from softprompt.serving.app import create_app
    from softprompt.serving.settings import ServerSettings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = ServerSettings(
            max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, batching=batching,  # type: ignore[arg-type]
            admin_token=admin_token, api_token=api_token, max_input_chars=max_input_chars,
            max_inputs_per_request=max_inputs_per_request, max_upload_bytes=max_upload_bytes,
            max_new_tokens=max_new_tokens, store_poll_s=store_poll_s, require_if_match=require_if_match,
        )
    except ValueError as err:
        _fail(str(err))
    if "://" not in prompts and Path(prompts).exists() and not Path(prompts).is_dir():
        _fail(f"--prompts {prompts!r} is not a folder")
    if replicas < 1:
        _fail(f"--replicas must be at least 1, got {replicas}")
    if replicas > 1 or ray_address is not None:
        _serve_on_ray(prompts, model, device, dtype, threads, host, port, settings, replicas, ray_address,
                      replica_cpus)
        return
    if host not in LOOPBACK and settings.api_token is None:
        typer.echo(f"warning: listening on {host} without --api-token: anyone who can reach it can use it", err=True)
    if threads:
        torch.set_num_threads(threads)
    try:
        typer.echo(f"loading model {model!r} on {device}...", err=True)
        lm = load_model(model, device=device, dtype=dtype)
        app = create_app(lm, prompts, settings)
    except SoftPromptError as err:
        _fail(str(err))
    registry = app.state.registry
    typer.echo(f"serving {len(registry)} prompt(s) from {prompts} on http://{host}:{port} "
               f"(batching={settings.batching}, max batch {settings.max_batch_size}, "
               f"max wait {settings.max_wait_ms:g} ms; uploads {'on' if settings.admin_token else 'off'})", err=True)
    for name, reason in registry.unavailable_list().items():
        typer.echo(f"warning: not serving {name!r}: {reason}", err=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower())


def _serve_on_ray(prompts, model, device, dtype, threads, host, port, settings, replicas, ray_address,
                  replica_cpus) -> None:
    """`serve --replicas N` (or --ray-address): the same API on Ray Serve, until Ctrl-C."""
    from softprompt.serving.ray_app import ModelSpec, build_app, serve_until_interrupted

    if host not in LOOPBACK and settings.api_token is None:
        typer.echo(f"warning: listening on {host} without --api-token: anyone who can reach it can use it", err=True)
    if Path(model).exists():  # a local folder / .gguf: replicas do not share our working directory
        model = str(Path(model).resolve())
    try:
        app = build_app(ModelSpec(model, device, dtype, threads), prompts, settings, replicas=replicas,
                        replica_cpus=replica_cpus)
    except SoftPromptError as err:
        _fail(str(err))
    where = f"the Ray cluster at {ray_address}" if ray_address else "a local Ray instance"
    typer.echo(f"starting {replicas} Ray Serve replica(s) of {model!r} on {where}, prompts from {prompts}...",
               err=True)

    def ready() -> None:
        typer.echo(f"serving on http://{host}:{port} with {replicas} replica(s) (Ctrl-C stops)", err=True)

    serve_until_interrupted(app, host=host, port=port, address=ray_address, on_ready=ready)


# --------------------------------------------------------------------------- client
client_app = typer.Typer(
    help="Talk to a running `softprompt serve` (URL from --url or $SOFTPROMPT_URL). Prints JSON.",
    no_args_is_help=True,
)


@client_app.callback()
def _client_options(
    ctx: typer.Context,
    url: Annotated[str, typer.Option("--url", envvar="SOFTPROMPT_URL", help="Server base URL.")] = "http://127.0.0.1:8000",
    token: Annotated[Optional[str], typer.Option("--token", envvar="SOFTPROMPT_API_TOKEN", help="API token.")] = None,
    admin_token: Annotated[Optional[str], typer.Option("--admin-token", envvar="SOFTPROMPT_ADMIN_TOKEN", help="Admin token (upload/delete).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for an answer.")] = 120.0,
) -> None:
    ctx.obj = {"url": url, "token": token, "admin_token": admin_token, "timeout": timeout}


def _call(ctx: typer.Context, method: str, *args: Any, **kwargs: Any) -> Any:
    from softprompt.serving.client import ClientError, SoftPromptClient

    opts = ctx.obj or {}
    try:
        with SoftPromptClient(opts.get("url"), token=opts.get("token") or "", admin_token=opts.get("admin_token") or "",
                              timeout=opts.get("timeout", 120.0)) as client:
            return getattr(client, method)(*args, **kwargs)
    except ClientError as err:
        _fail(str(err))
    except OSError as err:
        _fail(str(err))


def _print(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


@client_app.command("classify")
def client_classify(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="Prompt name.")],
    inputs: Annotated[list[str], typer.Argument(help="Input texts.")],
    label: Annotated[Optional[list[str]], typer.Option("--label", "-l", help="A candidate label (repeat); default: the prompt's label words.")] = None,
) -> None:
    """Classify inputs with a prompt."""
    _print(_call(ctx, "classify", prompt, inputs, label or None))


@client_app.command("generate")
def client_generate(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="Prompt name.")],
    inputs: Annotated[list[str], typer.Argument(help="Input texts.")],
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", help="Most tokens to generate.")] = 32,
) -> None:
    """Generate a continuation of each input."""
    _print(_call(ctx, "generate", prompt, inputs, max_new_tokens))


@client_app.command("score")
def client_score(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="Prompt name.")],
    input: Annotated[str, typer.Argument(help="Input text.")],
    targets: Annotated[list[str], typer.Argument(help="Target strings to score.")],
) -> None:
    """Log-likelihood of each target given the input."""
    _print(_call(ctx, "score", prompt, input, targets))


@client_app.command("prompts")
def client_prompts(ctx: typer.Context) -> None:
    """List the served prompts."""
    _print(_call(ctx, "prompts"))


@client_app.command("show")
def client_show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Prompt name.")]) -> None:
    """One prompt's metadata."""
    _print(_call(ctx, "prompt", name))


@client_app.command("upload")
def client_upload(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Name to serve it under.")],
    file: Annotated[Path, typer.Argument(help="Prompt file (.safetensors).", exists=True, dir_okay=False)],
) -> None:
    """Upload (create or replace) a prompt file; needs the admin token."""
    _print(_call(ctx, "upload_prompt", name, file))


@client_app.command("delete")
def client_delete(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Prompt name.")]) -> None:
    """Delete a prompt; needs the admin token."""
    _call(ctx, "delete_prompt", name)
    _print({"deleted": name})


@client_app.command("health")
def client_health(ctx: typer.Context) -> None:
    """The server's /healthz."""
    _print(_call(ctx, "health"))
