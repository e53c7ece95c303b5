#!/usr/bin/env python3
"""Drives `collie serve` with the official `openai` Python client (run by scripts/test.sh after swift test).

Starts the server on a free loopback port with the tiny chat model of Tests/CollieServerTests/Fixtures (plus
the bundled LLaMA-2 tokenizer), then checks:
  - completions and chat completions, plain and streamed, through openai.OpenAI;
  - 32 concurrent clients x 10 requests each: all 320 answered, each reply equal to the same greedy request
    answered alone;
  - malformed requests get 4xx with an OpenAI error message, and the server keeps serving;
then restarts it with --api-key and checks that the client's key is accepted and a wrong one raises
AuthenticationError. Exits non-zero on any failure.

    python3 scripts/checks/check_server.py [--collie .build/debug/collie]

The PyPI packages it imports are pinned in scripts/requirements.txt.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request

import openai

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from collie_scripts import add_collie_argument, chat_model_folder, start_serve, stop  # noqa: E402


def raw_post(base, path, body):
    request = urllib.request.Request(base + path, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def check(condition, message):
    if not condition:
        raise AssertionError(message)
    print("ok:", message)


def main():
    parser = argparse.ArgumentParser()
    add_collie_argument(parser)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=10)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="collie-check-server-")
    log = open(os.path.join(tmp, "serve.err"), "w")
    process, base = start_serve(args.collie, chat_model_folder(tmp), "--model-name", "tiny-chat", stderr=log)
    try:
        client = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)
        check([m.id for m in client.models.list().data] == ["tiny-chat"], "models.list names the served model")

        completion = client.completions.create(model="tiny-chat", prompt="Once upon a time", max_tokens=20,
                                               temperature=0)
        text = completion.choices[0].text
        check(len(text) > 0 and completion.usage.completion_tokens == 20, f"completion: {text!r}")
        pieces = [c.choices[0].text for c in client.completions.create(
            model="tiny-chat", prompt="Once upon a time", max_tokens=20, temperature=0, stream=True)]
        check("".join(pieces) == text and len(pieces) > 3, f"streamed completion equals it ({len(pieces)} chunks)")

        chat = client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "Hi there"}],
                                              max_tokens=16, temperature=0.7, seed=3)
        reply = chat.choices[0].message.content
        check(chat.choices[0].message.role == "assistant" and len(reply) > 0, f"chat completion: {reply!r}")
        deltas = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="tiny-chat", messages=[{"role": "user", "content": "Hi there"}], max_tokens=16, temperature=0.7,
            seed=3, stream=True)]
        check("".join(deltas) == reply, f"streamed chat equals it ({len(deltas)} chunks)")

        # 32 clients x 10 requests: every one answered, each as it would be alone.
        prompts = [f"Client {c} request {r}:" for c in range(args.clients) for r in range(args.requests)]
        alone = {p: client.completions.create(model="tiny-chat", prompt=p, max_tokens=4, temperature=0).choices[0].text
                 for p in prompts}

        def run_client(c):
            own = openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=300)
            answers = []
            for r in range(args.requests):
                prompt = f"Client {c} request {r}:"
                result = own.completions.create(model="tiny-chat", prompt=prompt, max_tokens=4, temperature=0)
                answers.append((prompt, result.choices[0].text))
            return answers

        started = time.time()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.clients) as pool:
            answers = [a for result in pool.map(run_client, range(args.clients)) for a in result]
        elapsed = time.time() - started
        check(len(answers) == args.clients * args.requests,
              f"{args.clients} concurrent clients x {args.requests} requests all answered in {elapsed:.1f} s")
        check(sorted(p for p, _ in answers) == sorted(prompts) and all(alone[p] == t for p, t in answers),
              f"all {len(answers)} concurrent answers equal the same requests alone")

        # Malformed requests: 4xx with a message; the server keeps serving.
        for body, path, status, needle in [
                (b"{oops", "/v1/completions", 400, "JSON"),
                (json.dumps({"model": "nope", "prompt": "x"}).encode(), "/v1/completions", 404, "does not exist"),
                (json.dumps({"model": "tiny-chat", "prompt": "x", "temperature": -1}).encode(), "/v1/completions",
                 400, "temperature"),
                (json.dumps({"model": "tiny-chat", "prompt": "x " * 700}).encode(), "/v1/completions", 400, "context"),
                (json.dumps({"model": "tiny-chat", "messages": [{"role": "user"}]}).encode(), "/v1/chat/completions",
                 400, "content")]:
            code, payload = raw_post(base, path, body)
            message = payload.get("error", {}).get("message", "")
            check(code == status and needle in message, f"{path} {body[:40]!r} -> {code} {message!r}")
        try:
            client.completions.create(model="tiny-chat", prompt="x", max_tokens=0)
            raise AssertionError("max_tokens=0 was accepted")
        except openai.BadRequestError as error:
            check("max_tokens" in str(error), f"openai raises BadRequestError: {error}")
        again = client.completions.create(model="tiny-chat", prompt="Once upon a time", max_tokens=20, temperature=0)
        check(again.choices[0].text == text, "the server keeps serving after bad requests")
    finally:
        stop(process)

    # With an API key: the openai client's own Authorization header is what the server checks.
    process, base = start_serve(args.collie, os.path.join(tmp, "chat-model"), "--model-name", "tiny-chat",
                                "--api-key", "sesame", stderr=log)
    try:
        keyed = openai.OpenAI(base_url=base + "/v1", api_key="sesame", max_retries=0, timeout=120)
        check([m.id for m in keyed.models.list().data] == ["tiny-chat"], "the right API key is accepted")
        try:
            openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0, timeout=120).models.list()
            raise AssertionError("a wrong API key was accepted")
        except openai.AuthenticationError as error:
            check(error.status_code == 401, f"a wrong API key raises AuthenticationError: {error}")
    finally:
        stop(process)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("check_server: all checks passed")


if __name__ == "__main__":
    sys.exit(main())
