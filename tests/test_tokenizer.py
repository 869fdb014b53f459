"""The committed tokenizer: size, special ids, the handout's example, round trips."""

import json
import unittest

from tests.helpers import REPO, tokenizer


class TokenizerTest(unittest.TestCase):
    def test_vocabulary_has_1024_pieces(self):
        self.assertEqual(len(tokenizer()), 1024)

    def test_special_ids_are_pad_0_eos_1_unk_2(self):
        ids = [tokenizer().convert_tokens_to_ids(t) for t in ("<pad>", "</s>", "<unk>")]
        self.assertEqual(ids, [0, 1, 2])

    def test_handout_example_encode_appends_eos_and_decode_shows_it(self):
        ids = tokenizer().encode("We like ML.")
        self.assertEqual(ids[-1], 1)
        self.assertEqual(tokenizer().decode(ids), "We like ML.</s>")

    def test_loads_with_autotokenizer_from_the_folder_name(self):
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(str(REPO / "my_tokenizer"))
        self.assertEqual(tok.decode(tok.encode("We like ML.")), "We like ML.</s>")

    def test_fixture_stories_round_trip(self):
        stories = json.loads((REPO / "data" / "untokenized_tiny_train_stories.json").read_text(encoding="utf-8"))
        for story in stories[:10]:
            ids = tokenizer().encode(story)
            self.assertEqual(tokenizer().decode(ids, skip_special_tokens=True), story)

    def test_normalisation_maps_typographic_quotes_and_dashes_to_ascii(self):
        text = "\u201cHi,\u201d she said \u2013 it\u2019s fine\u2026"
        ids = tokenizer().encode(text, add_special_tokens=False)
        self.assertEqual(tokenizer().decode(ids), "\"Hi,\" she said - it's fine...")
