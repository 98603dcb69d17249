"""Talk to a running prompt server from Python.

Start a server first (uploads need an admin token):

    softprompt serve --model smollm2 --prompts prompts/ --admin-token secret

then:

    python examples/client.py --url http://127.0.0.1:8000 --admin-token secret \
        --upload prompts-to-add/sst2.safetensors
    python examples/client.py --prompt sst2 "Review: a gripping, funny film. Sentiment:"

Equivalent CLI calls: `softprompt client prompts`, `softprompt client classify sst2 "..."`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from softprompt.serving.client import ClientError, SoftPromptClient


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="server URL (default $SOFTPROMPT_URL or http://127.0.0.1:8000)")
    parser.add_argument("--token", default=None, help="API token (default $SOFTPROMPT_API_TOKEN)")
    parser.add_argument("--admin-token", default=None, help="admin token, for --upload (default $SOFTPROMPT_ADMIN_TOKEN)")
    parser.add_argument("--upload", type=Path, default=None, help="upload this prompt file first (name = file stem)")
    parser.add_argument("--prompt", default=None, help="prompt to use (default: the first one served)")
    parser.add_argument("inputs", nargs="*", default=["Review: a gripping, funny film. Sentiment:"])
    args = parser.parse_args(argv)

    with SoftPromptClient(args.url, token=args.token, admin_token=args.admin_token) as client:
        try:
            health = client.health()
            print(f"server: model {health['model']}, {health['prompts']} prompt(s), batching {health['batching']}")
            if args.upload is not None:
                info = client.upload_prompt(args.upload.stem, args.upload)
                print(f"uploaded {info['name']!r} ({info['prompt_length']} soft tokens, task {info['task']})")

            prompts = client.prompts()["prompts"]
            for p in prompts:
                print(f"  {p['name']:<20} task={p['task']} length={p['prompt_length']} labels={p['label_words']}")
            if not prompts:
                print("no prompts served; upload one with --upload FILE")
                return 1
            name = args.prompt or prompts[0]["name"]
            info = next((p for p in prompts if p["name"] == name), None)

            if info is not None and info["label_words"]:
                out = client.classify(name, args.inputs)
                for text, result in zip(args.inputs, out["results"]):
                    print(f"[{name}] {result['label']:<12} p={result['probabilities'][result['label']]:.3f}  {text}")
                scores = client.score(name, args.inputs[0], info["label_words"])
                print("log-likelihoods:", {s["target"]: round(s["log_likelihood"], 3) for s in scores["results"]})
            else:
                out = client.generate(name, args.inputs, max_new_tokens=16)
                for text, result in zip(args.inputs, out["results"]):
                    print(f"[{name}] {text} -> {result['text']}")
        except ClientError as err:
            print(f"error: {err}")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
