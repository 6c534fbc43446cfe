"""The `jsonl` task: a researcher's own prompt file, scored by a verifier (docs/tasks.md).

    entropyctl train model=hf model.path=CKPT task=jsonl task.path=train.jsonl task.verifier=gsm8k

Each row of `task.path` (tasks/rows.py: JSONL, a JSON array, Parquet, CSV) holds a prompt
(`task.prompt_key`: text, or chat messages) and a reference answer (`task.answer_key`; a
dotted key reads a nested field, as verl's `reward_model.ground_truth`). A row missing either,
with an empty prompt or an answer the verifier cannot read is a bad row: counted, reported,
skipped, and more than `task.max_bad_rows` of them stop the run before it starts. Validation rows come from
`task.val_path`, or `task.val_size` rows of `task.path` held out with `task.val_seed`.

Prompts are rendered once the policy's tokenizer is known (`bind`): with its chat template
when it has one (`task.chat_template`, default on for such tokenizers), the system prompt
first. Formats are named regular expressions (first match wins); planning tokens are those
covered by a strategic phrase (spec §8.1).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from entropyctl.config import TaskConfig
from entropyctl.errors import BadInput
from entropyctl.tasks import verifiers
from entropyctl.tasks.base import UNKNOWN
from entropyctl.tasks.rows import MISSING, as_conversation, describe_fields, field, read_rows

if TYPE_CHECKING:
    from torch import Tensor

# Field names under which nested rows keep the answer (verl: reward_model.ground_truth).
LIKELY_ANSWERS = ("ground_truth", "answer", "solution", "target", "label")


@dataclass(frozen=True)
class Problem:
    prompt: str  # what the policy sees (the chat template applied once bound)
    text: str  # the row's prompt field as written
    answer: str  # the reference answer, as written
    demo: str  # a correct completion for sft_refresh (task.demo_key, else the answer)
    row: int  # 1-based line of the row in its file (item of a JSON array, row of a Parquet file)
    file: str = ""  # the file's name, for messages
    conversation: tuple = ()  # ((role, content), ...) when the prompt field is chat messages


class JsonlTask:
    def __init__(self, cfg: TaskConfig):
        for f in cfg.formats:
            if not f.pattern:
                raise BadInput(f"task.formats: format {f.name!r} has no pattern; task=jsonl classifies "
                               "completions by regular expression (e.g. {name: boxed, pattern: '\\\\boxed'})")
        if cfg.verifier == "math":
            verifiers.require_math_verify()
        self.cfg = cfg
        self.format_names = [f.name for f in cfg.formats]
        self._formats = [(f.name, re.compile(f.pattern)) for f in cfg.formats]
        # Whole words only: `wait` is a strategic move, `awaited` is not.
        self._phrases = [re.compile(rf"(?<!\w){re.escape(p.strip().lower())}(?!\w)")
                         for p in cfg.planning_phrases if p.strip()]
        self._pieces: dict[int, str] = {}
        self.bad: list[str] = []  # "file:line: why" of every bad row
        self.n_rows = 0
        problems = self._load(Path(cfg.path), "task.path")
        val = self._load(Path(cfg.val_path), "task.val_path") if cfg.val_path else None
        if len(self.bad) == self.n_rows:
            raise BadInput(f"task: none of the {self.n_rows} rows is usable (first: {self.bad[0] if self.bad else 'empty file'}); "
                           f"check task.prompt_key={cfg.prompt_key}, task.answer_key={cfg.answer_key} and task.verifier")
        if len(self.bad) > cfg.max_bad_rows:
            raise BadInput(f"task: {len(self.bad)} bad rows of {self.n_rows} (first: {self.bad[0]}); fix "
                           f"them or allow them with task.max_bad_rows={len(self.bad)}")
        if val is not None:
            self.train_problems, self.val_problems = problems, val
        else:
            if cfg.val_size >= len(problems):
                raise BadInput(f"task.val_size={cfg.val_size} leaves no training rows of the {len(problems)} good "
                               f"rows in {cfg.path}; lower it or give task.val_path")
            held = set(random.Random(cfg.val_seed).sample(range(len(problems)), cfg.val_size))
            self.train_problems = [p for i, p in enumerate(problems) if i not in held]
            self.val_problems = [problems[i] for i in sorted(held)]
        if not cfg.val_path and cfg.val_size == 0:
            raise BadInput("task.val_size=0 leaves no validation prompts; give task.val_size>=1 or task.val_path")
        if not self.train_problems or not self.val_problems:
            which = "task.path" if not self.train_problems else "task.val_path"
            raise BadInput(f"{which}: no usable rows; check task.prompt_key={cfg.prompt_key} and "
                           f"task.answer_key={cfg.answer_key}")

    def _load(self, path: Path, key: str) -> list[Problem]:
        out = []
        for line, row in read_rows(path, key):
            self.n_rows += 1
            got = self._parse(row)
            if isinstance(got, str):
                self.bad.append(f"{path.name}:{line}: {got}")
                continue
            text, answer, demo, conversation = got
            out.append(Problem(text, text, answer, demo, line, path.name, conversation))
        return out

    def _parse(self, row) -> tuple[str, str, str, tuple] | str:
        """(text, answer, demo, conversation) of a row, or why it is a bad row."""
        c = self.cfg
        if not isinstance(row, dict):
            return "not a JSON object"
        values = {}
        for k in (c.prompt_key, c.answer_key):
            value = values[k] = field(row, k)
            if value is MISSING:
                return f"no {k!r} field (the row has: {describe_fields(row)})"
            if value is None:
                return f"{k!r} is null"
            if isinstance(value, dict):
                inner = next((n for n in LIKELY_ANSWERS if n in value), next(iter(value), "FIELD"))
                return (f"{k!r} is an object ({describe_fields(value)}), not text; name a field inside it, "
                        f"e.g. {k}.{inner}")
        prompt, answer = values[c.prompt_key], str(values[c.answer_key])
        try:
            conversation = as_conversation(prompt)
        except ValueError as e:
            return f"{c.prompt_key!r} is a list but not chat messages: {e}"
        if conversation is None and not str(prompt).strip():
            return "empty prompt"
        if not verifiers.reference_ok(c.verifier, answer):
            return f"answer {answer[:40]!r} unreadable by verifier {c.verifier}"
        demo = field(row, c.demo_key) if c.demo_key else None
        demo = answer if demo is None or demo is MISSING else str(demo)
        text = conversation[-1][1] if conversation else str(prompt)
        return text, answer, demo, conversation or ()

    def describe(self) -> str:
        """One line for the run's log: rows used, bad rows skipped, prompt lengths once bound."""
        more = f"; {len(self.bad)} bad rows skipped (first: {self.bad[0]})" if self.bad else ""
        lengths = getattr(self, "prompt_tokens", None)
        if lengths:
            more += f"; prompts {lengths[0]}-{lengths[-1]} tokens (median {lengths[len(lengths) // 2]})"
        if getattr(self, "prompts_left_out", 0):
            more += f", {self.prompts_left_out} over task.max_prompt_tokens={self.cfg.max_prompt_tokens} left out"
        seen = {(p.text, p.conversation) for p in self.train_problems}
        shared = sum((p.text, p.conversation) in seen for p in self.val_problems)
        if shared:  # validation accuracy there measures recall of trained prompts, not generalisation
            more += f"; {shared} of the validation prompts are training prompts too"
        return (f"task {self.cfg.name}: {len(self.train_problems)} training and {len(self.val_problems)} "
                f"validation prompts, verifier {self.cfg.verifier}{more}")

    # ------------------------------------------------------------------ the Task interface

    def bind(self, tokenizer) -> None:
        """Render every prompt for `tokenizer`: its chat template (with the system prompt)
        when `task.chat_template` asks for it or, left unset, when the tokenizer has one."""
        c = self.cfg
        has = bool(getattr(tokenizer, "chat_template", None))
        use = has if c.chat_template is None else c.chat_template
        if use and not has:
            raise BadInput("task.chat_template=true but the model's tokenizer has no chat template; "
                           "set task.chat_template=false or use a checkpoint whose tokenizer has one")

        self._check_conversations(use, has)

        def render(p: Problem) -> Problem:
            if not use:
                return replace(p, prompt=f"{c.system_prompt}\n\n{p.text}" if c.system_prompt else p.text)
            msgs = ([{"role": "system", "content": c.system_prompt}] if c.system_prompt else [])
            if p.conversation:
                msgs += [{"role": role, "content": content} for role, content in p.conversation]
            else:
                msgs.append({"role": "user", "content": p.text})
            try:
                text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            except Exception as e:  # jinja's TemplateError, or what the template raises itself
                if p.conversation:  # the rows' own messages: plain text cannot stand in for them
                    fix = ("messages this template takes (some, as Gemma's, have no system role)"
                           + (", and task.system_prompt=null" if c.system_prompt else ""))
                else:
                    fix = ("task.system_prompt=null (this template may have no system role), or "
                           if c.system_prompt else "") + "task.chat_template=false"
                raise BadInput(f"the tokenizer's chat template refused the prompt of {p.file}:{p.row} "
                               f"({type(e).__name__}: {e}); try {fix}") from None
            bos = getattr(tokenizer, "bos_token", None)
            # The sampler puts beginning-of-sequence first itself: not twice.
            if bos and tokenizer.bos_token_id is not None and text.startswith(bos):
                text = text[len(bos):]
            return replace(p, prompt=text)

        self.train_problems = [render(p) for p in self.train_problems]
        self.val_problems = [render(p) for p in self.val_problems]
        self._pieces = {}
        self._fit_prompts(tokenizer)

    def _check_conversations(self, use_template: bool, has_template: bool) -> None:
        """Chat-message prompts need the chat template, and bring their own system message or
        take task.system_prompt, not both: refused in one line, naming the first such row."""
        first = next((p for p in self.train_problems + self.val_problems if p.conversation), None)
        if first is None:
            return
        if not use_template:
            why = "task.chat_template=false" if has_template else "the model's tokenizer has no chat template"
            raise BadInput(f"{first.file}:{first.row}: the prompt is chat messages, which only a chat template "
                           f"can render, and {why}; use a checkpoint whose tokenizer has one (unset "
                           "task.chat_template), or write the prompts as text")
        own = next((p for p in self.train_problems + self.val_problems
                    if p.conversation and p.conversation[0][0] == "system"), None)
        if own is not None and self.cfg.system_prompt:
            raise BadInput(f"task.system_prompt is set but the prompt of {own.file}:{own.row} has its own system "
                           "message; set task.system_prompt=null, or drop the system messages from the file")

    def _fit_prompts(self, tokenizer) -> None:
        """Token lengths of the rendered prompts as the sampler encodes them (beginning of
        sequence included); prompts over `task.max_prompt_tokens` left out."""
        bos = int(tokenizer.bos_token_id is not None)
        problems = self.train_problems + self.val_problems
        ids = tokenizer([p.prompt for p in problems], add_special_tokens=False)["input_ids"]
        tokens = {id(p): len(x) + bos for p, x in zip(problems, ids)}
        limit = self.cfg.max_prompt_tokens
        self.prompts_left_out = 0
        if limit is not None:
            train = [p for p in self.train_problems if tokens[id(p)] <= limit]
            val = [p for p in self.val_problems if tokens[id(p)] <= limit]
            if not train or not val:
                which = "training" if not train else "validation"
                raise BadInput(f"task.max_prompt_tokens={limit} leaves no {which} prompts (the shortest is "
                               f"{min(tokens.values())} tokens); raise it, or null to keep every prompt")
            self.prompts_left_out = len(problems) - len(train) - len(val)
            self.train_problems, self.val_problems = train, val
        self.prompt_tokens = sorted(tokens[id(p)] for p in self.train_problems + self.val_problems)
        longest = max(self.train_problems + self.val_problems, key=lambda p: tokens[id(p)])
        self.longest_prompt = (tokens[id(longest)], f"{longest.file}:{longest.row}")

    def sample_train(self, rng: random.Random, n: int) -> list[Problem]:
        """n training problems, drawn with replacement."""
        return [rng.choice(self.train_problems) for _ in range(n)]

    def classify(self, completion: str, finished: bool = True) -> str:
        """The first declared format whose pattern occurs in `completion`, else 'unknown'.
        A truncated completion is classified by what it wrote."""
        for name, rx in self._formats:
            if rx.search(completion):
                return name
        return UNKNOWN

    def score(self, completion: str, problem: Problem, finished: bool = True) -> float:
        """1 for a correct answer, `task.format_reward` for a wrong one in a declared format,
        else 0. A truncated completion is verified as written (as verl does)."""
        if verifiers.verify(self.cfg.verifier, completion, problem.answer, self.cfg.answer_pattern):
            return 1.0
        if self.cfg.format_reward and self.classify(completion, finished) != UNKNOWN:
            return self.cfg.format_reward
        return 0.0

    def demonstrations(self, rng: random.Random, n: int) -> tuple[list[Problem], list[str]]:
        problems = self.sample_train(rng, n)
        return problems, [p.demo for p in problems]

    def plan_mask(self, completion_ids: Tensor, completion_mask: Tensor, tokenizer) -> Tensor:
        """(B, T) float: 1 on every token a strategic phrase (task.planning_phrases) covers,
        matched case-insensitively in the text the tokens decode to, one token at a time."""
        import torch

        out = torch.zeros(completion_ids.shape, dtype=completion_mask.dtype)
        if not self._phrases:
            return out
        for b, (ids, m) in enumerate(zip(completion_ids.tolist(), completion_mask.tolist())):
            pieces = [self._piece(tokenizer, t) for t, keep in zip(ids, m) if keep]
            text = "".join(pieces)
            ends, total = [], 0
            for p in pieces:
                total += len(p)
                ends.append(total)
            for rx in self._phrases:
                for hit in rx.finditer(text):
                    for t, end in enumerate(ends):
                        start = end - len(pieces[t])
                        if start < hit.end() and end > hit.start():
                            out[b, t] = 1.0
        return out * completion_mask

    def _piece(self, tokenizer, token_id: int) -> str:
        if token_id not in self._pieces:
            # Lower-cased piece by piece, so character offsets agree with the joined text.
            self._pieces[token_id] = tokenizer.decode([token_id], skip_special_tokens=True).lower()
        return self._pieces[token_id]
