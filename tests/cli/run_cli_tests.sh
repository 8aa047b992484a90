#!/usr/bin/env bash
# The command-line programs as a user meets them, on the real 270M (a base model: its
# GGUF has no chat template) and the tiny vision fixture.
#   run_cli_tests.sh BIN_DIR SOURCE_DIR MODEL.gguf
set -u
bin=$1 src=$2 model=$3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
fail=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok    $name"; else echo "FAIL  $name"; fail=1; fi
}
has() { grep -qF -- "$2" "$1"; }
lacks() { ! grep -qF -- "$2" "$1"; }

[ -f "$model" ] || { echo "$model is missing: run bash scripts/fetch-model.sh (make test does)"; exit 1; }

# tokenize: raw text on a base model, the chat template on request; ids as the tokenizer gives them.
"$bin/gemma3-cli" tokenize --model "$model" --prompt "Why is the sky blue?" >"$out/tok_raw" 2>&1
check "tokenize: exit 0" test $? -eq 0
check "tokenize: a base model's prompt is raw text" has "$out/tok_raw" "(raw text)"
check "tokenize: first id is <bos> 2" has "$out/tok_raw" "       2  <bos>"
check "tokenize: the pieces are shown" has "$out/tok_raw" "▁sky"
"$bin/gemma3-cli" tokenize --model "$model" --chat --prompt "Why is the sky blue?" >"$out/tok_chat" 2>&1
check "tokenize --chat: the template" has "$out/tok_chat" "(chat template)"
check "tokenize --chat: <start_of_turn> 105" has "$out/tok_chat" "     105  <start_of_turn>"
check "tokenize --chat: the newline shown as \\n" has "$out/tok_chat" '  \n'
n_raw=$(head -1 "$out/tok_raw" | cut -d' ' -f1)
check "tokenize: the count line matches the listed ids" test "$n_raw" -eq "$(($(wc -l <"$out/tok_raw") - 1))"

# generate on a base model: completion mode, said in one line; ids on request; no progress bar into a pipe.
"$bin/gemma3-cli" generate --model "$model" --prompt "The capital of France is" --greedy --max-tokens 8 \
  --print-ids --threads 2 >"$out/gen" 2>"$out/gen_err"
check "generate: exit 0" test $? -eq 0
check "generate: says the model has no chat template" has "$out/gen_err" "has no chat template (a base model)"
check "generate: prompt ids printed" has "$out/gen_err" "[prompt ids (6): 2 "
check "generate: generated ids printed" has "$out/gen_err" "[generated ids (8):"
check "generate: no progress bar into a pipe" lacks "$out/gen_err" "loading ["
check "generate: no carriage returns into a pipe" test "$(tr -cd '\r' <"$out/gen_err" | wc -c)" -eq 0
check "generate: the continuation is text (8 tokens, several words)" test "$(wc -w <"$out/gen")" -ge 4
# --prompts-file: the prompts generated together (decode batches) give each prompt's own greedy ids.
printf 'The capital of France is\n\nOnce upon a time\n' >"$out/prompts.txt"
"$bin/gemma3-cli" generate --model "$model" --prompts-file "$out/prompts.txt" --greedy --max-tokens 8 \
  --print-ids --threads 2 >"$out/batch" 2>"$out/batch_err"
check "generate --prompts-file: exit 0" test $? -eq 0
check "generate --prompts-file: the first answer, numbered" has "$out/batch" "[1/2] The capital of France is"
check "generate --prompts-file: the second answer (empty line skipped)" has "$out/batch" "[2/2] Once upon a time"
"$bin/gemma3-cli" generate --model "$model" --prompt "Once upon a time" --greedy --max-tokens 8 \
  --print-ids --threads 2 >/dev/null 2>"$out/alone_err"
check "generate --prompts-file: the same greedy ids as the prompt alone" \
  test "$(grep 'generated ids' "$out/batch_err" | sed -n 2p)" = "$(grep 'generated ids' "$out/alone_err")"
check "generate --prompts-file: the first also equals the single-prompt run above" \
  test "$(grep 'generated ids' "$out/batch_err" | sed -n 1p)" = "$(grep 'generated ids' "$out/gen_err")"
"$bin/gemma3-cli" generate --model "$model" --prompts-file "$out/prompts.txt" --prompt "x" >"$out/batch_bad" 2>&1
check "generate --prompts-file with --prompt: refused" test $? -eq 2
: >"$out/empty.txt"
"$bin/gemma3-cli" generate --model "$model" --prompts-file "$out/empty.txt" >"$out/batch_empty" 2>&1
check "generate --prompts-file of no prompts: fails" test $? -eq 1
check "generate --prompts-file of no prompts: says why" has "$out/batch_empty" "expected prompts (one per line), found none"
"$bin/gemma3-cli" generate --model "$model" --prompt "x" --raw --chat >"$out/bad" 2>&1
check "generate: --raw with --chat is refused" test $? -eq 2
check "generate: ... saying why" has "$out/bad" "--raw and --chat contradict each other"

# --device: a bf16 cache is the GPU's alone; --device cuda without a GPU (or in a build
# without the CUDA backend) is refused with the reason, never run on the CPU instead.
"$bin/gemma3-cli" generate --model "$model" --prompt "x" --kv-type bf16 >"$out/dev_bf16" 2>&1
check "--kv-type bf16 on the CPU: refused" test $? -eq 2
check "--kv-type bf16 on the CPU: says why" has "$out/dev_bf16" "--kv-type bf16 needs --device cuda"
"$bin/gemma3-cli" generate --model "$model" --prompt "x" --cuda-graphs >"$out/dev_graphs" 2>&1
check "--cuda-graphs on the CPU: refused" test $? -eq 2
check "--cuda-graphs on the CPU: says why" has "$out/dev_graphs" "--cuda-graphs needs --device cuda"
"$bin/gemma3-cli" generate --model "$model" --prompt "x" --cuda-weights blocks >"$out/dev_blocks" 2>&1
check "--cuda-weights on the CPU: refused" test $? -eq 2
check "--cuda-weights on the CPU: says why" has "$out/dev_blocks" "--cuda-weights needs --device cuda"
"$bin/gemma3-cli" generate --model "$model" --prompt "x" --device cuda --cuda-weights int4 >"$out/dev_int4" 2>&1
check "--cuda-weights int4: refused" test $? -eq 2
check "--cuda-weights int4: says why" has "$out/dev_int4" "--cuda-weights expects bf16 or blocks, got 'int4'"
"$bin/gemma3-cli" generate --model "$model" --prompt "x" --device tpu >"$out/dev_bad" 2>&1
check "--device tpu: refused" test $? -eq 2
"$bin/gemma3-cli" generate --model "$model" --prompt "x" --max-tokens 2 --device cuda >"$out/dev_cuda" 2>&1
dev_rc=$?
if grep -qE "no usable CUDA device|built without the CUDA backend" "$out/dev_cuda"; then
  check "--device cuda without a GPU: fails" test $dev_rc -ne 0
else  # a GPU is here: it runs
  check "--device cuda on a GPU: exit 0" test $dev_rc -eq 0
  check "--device cuda on a GPU: the backend is cuda" has "$out/dev_cuda" "backend cuda"
  "$bin/gemma3-cli" generate --model "$model" --prompt "The capital of France is" --greedy --max-tokens 8 \
    --print-ids --device cuda >"$out/dev_plain" 2>&1
  "$bin/gemma3-cli" generate --model "$model" --prompt "The capital of France is" --greedy --max-tokens 8 \
    --print-ids --device cuda --cuda-graphs >"$out/dev_graphed" 2>&1
  check "--cuda-graphs on a GPU: exit 0" test $? -eq 0
  check "--cuda-graphs on a GPU: the same greedy ids" test "$(grep 'generated ids' "$out/dev_graphed")" = \
    "$(grep 'generated ids' "$out/dev_plain")"
  "$bin/gemma3-cli" generate --model "$model" --prompt "The capital of France is" --greedy --max-tokens 8 \
    --print-ids --device cuda --cuda-weights blocks >"$out/dev_blocks_gpu" 2>&1
  check "--cuda-weights blocks on a GPU: exit 0" test $? -eq 0
  check "--cuda-weights blocks on a GPU: the backend keeps the blocks" has "$out/dev_blocks_gpu" \
    "GGUF block weights as stored"
fi

# gemma3-run takes any model load_model takes: a GGUF file too.
"$bin/gemma3-run" "$model" --prompt-ids 2,818,5279,529 --max-tokens 4 >"$out/run" 2>&1
check "gemma3-run: a GGUF file loads" test $? -eq 0
check "gemma3-run: prints the continuation" has "$out/run" "greedy"

# describe: Pan-and-Scan without a tokenizer would drop the crop phrases: refused.
"$bin/describe" --model "$src/tests/fixtures/vision_tiny" --image "$src/tests/fixtures/vision_images/rgb.bmp" \
  --pan-and-scan --prompt-ids 2,105 >"$out/pas" 2>&1
check "describe --pan-and-scan without a tokenizer: refused" test $? -ne 0
check "describe --pan-and-scan without a tokenizer: says why" has "$out/pas" "--pan-and-scan needs --tokenizer"

exit $fail
