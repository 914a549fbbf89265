"""`streamvideo prompts`: the prompts a model was trained on, and the words that steer it.

    streamvideo prompts                                     # the default model's prompts and vocabulary
    streamvideo prompts --check "a red knight walking on snowy ground"

A hash-encoded model gives every word a fixed random vector, so only words it saw in training steer
it. `--check` names the words of a prompt outside that vocabulary: exit 0 when every word is known,
1 otherwise, and also 1 when the model records no trained prompts to check against.
"""

from __future__ import annotations

import argparse
import sys

from ..engine.presets import trained_prompts
from ..engine.text import prompt_words, unknown_words, vocabulary

MAX_LISTED_NUMBERS = 4  # a group label names its prompts up to this many, then only counts them


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help='preset name or model folder (default: "default")')
    parser.add_argument("--check", metavar="PROMPT", default=None,
                        help="name the words of PROMPT the model does not know (exit 1 if there are any)")


def run(args: argparse.Namespace) -> int:
    try:
        prompts = trained_prompts(args.model)
    except ValueError as err:
        print(f"streamvideo prompts: error: {err}", file=sys.stderr)
        return 2
    if args.check is not None:
        return check(args.model, prompts, args.check)
    print("\n".join(listing(args.model, prompts)))
    return 0


def check(model: str, prompts: list[str], prompt: str) -> int:
    """Print the prompt's unknown words; the exit status says whether it only uses known words."""
    if not prompts:
        print(f"{model} records no trained prompts, so there is no vocabulary to check {prompt!r} against")
        return 1
    unknown = unknown_words(prompt, vocabulary(prompts))
    if unknown:
        print(f"not in {model}'s vocabulary: {', '.join(map(repr, unknown))} (they do not steer it)")
        return 1
    print(f"every word of {prompt!r} is in {model}'s vocabulary")
    return 0


def listing(model: str, prompts: list[str]) -> list[str]:
    """The numbered trained prompts, then the vocabulary grouped by the prompts each word occurs in."""
    if not any(prompts):   # [""]: trained without prompts (its start frames are stored under the empty one)
        return [f"{model} records no trained prompts: no word is known to steer it"]
    lines = [f"{model} was trained on {len(prompts)} prompt{'s' * (len(prompts) > 1)}:"]
    lines += [f"  {number:>{len(str(len(prompts)))}}. {prompt}" for number, prompt in enumerate(prompts, 1)]
    groups = word_groups(prompts)
    lines.append(f"vocabulary ({len(vocabulary(prompts))} words):")
    width = max(len(label) for label, _ in groups) + 1
    lines += [f"  {label + ':':<{width}} {' '.join(words)}" for label, words in groups]
    return lines


def word_groups(prompts: list[str]) -> list[tuple[str, list[str]]]:
    """(label, words) from the words every prompt shares to the words that set one prompt apart;
    words keep the order they first appear in, so a group reads like a piece of a prompt."""
    numbers: dict[str, list[int]] = {}
    for number, prompt in enumerate(prompts, 1):
        for word in prompt_words(prompt):
            seen_in = numbers.setdefault(word, [])
            if number not in seen_in:
                seen_in.append(number)
    groups: dict[str, list[str]] = {}
    order: dict[str, tuple[int, int]] = {}
    for word, seen_in in numbers.items():
        label = group_label(seen_in, len(prompts))
        groups.setdefault(label, []).append(word)
        order.setdefault(label, (-len(seen_in), seen_in[0]))
    return [(label, groups[label]) for label in sorted(groups, key=order.__getitem__)]


def group_label(numbers: list[int], total: int) -> str:
    if len(numbers) == total:
        return "every prompt"
    if len(numbers) > MAX_LISTED_NUMBERS:
        return f"{len(numbers)} of {total} prompts"
    return f"prompt{'s' * (len(numbers) > 1)} {', '.join(map(str, numbers))}"
