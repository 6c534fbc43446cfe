"""Tokenizer files a run writes (the lab base, `export`) and reads (model.path): readable by
transformers 4 and 5 alike, and one line when the installed transformers cannot read them."""

from __future__ import annotations

import json

import pytest
import transformers

from entropyctl.errors import BadInput
from entropyctl.models.loading import PORTABLE_GENERIC, load_tokenizer, save_tokenizer
from tests.hf_fixtures import train_tokenizer

TEXT = "Tom has 26 apples and buys 28 more. #### 54"


def test_a_generic_tokenizer_is_saved_under_the_class_name_both_majors_read(tmp_path):
    tok = train_tokenizer("qwen2")
    tok.save_pretrained(tmp_path / "plain")
    plain = json.loads((tmp_path / "plain" / "tokenizer_config.json").read_text())["tokenizer_class"]
    save_tokenizer(tok, tmp_path / "ours")
    config = json.loads((tmp_path / "ours" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == PORTABLE_GENERIC
    back = load_tokenizer(tmp_path / "ours")
    assert back(TEXT).input_ids == tok(TEXT).input_ids
    assert (back.eos_token_id, back.pad_token_id, back.bos_token_id) == (tok.eos_token_id, tok.pad_token_id, tok.bos_token_id)
    assert back.chat_template == tok.chat_template
    # what save_pretrained alone writes is read back the same by this transformers too
    assert load_tokenizer(tmp_path / "plain")(TEXT).input_ids == tok(TEXT).input_ids, plain


@pytest.mark.skipif(transformers.__version__.startswith("5"), reason="transformers 5 reads either name")
def test_under_transformers_4_a_tokenizer_saved_by_5_is_one_line_saying_so(tmp_path):
    save_tokenizer(train_tokenizer("qwen2"), tmp_path)
    config_file = tmp_path / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["tokenizer_class"] = "TokenizersBackend"  # what transformers 5's save_pretrained alone writes
    config_file.write_text(json.dumps(config))
    with pytest.raises(BadInput, match=r"its tokenizer was saved by transformers 5 .* use transformers>=5, or set "
                                       r'"tokenizer_class": "PreTrainedTokenizerFast"'):
        load_tokenizer(tmp_path)
