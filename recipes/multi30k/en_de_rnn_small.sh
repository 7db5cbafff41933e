#!/usr/bin/env bash
# Multi30k en -> de, rnn_small: SentencePiece BPE 8k + training (recipes/multi30k/rnn_small.yaml, the
# RNN recipe with a 256 decoder, for float32 CPUs), averaging of the last checkpoints chosen on val,
# beam 5 on val and test_2016_flickr, sacreBLEU + chrF.
# Usage (from the repository root): recipes/multi30k/en_de_rnn_small.sh   (env: see recipes/common.sh)
source "$(dirname "$0")/../common.sh"
multi30k en de rnn_small
