#!/usr/bin/env bash
# Robustness campaign: the whole longrwkv CLI fed nonsense, as a careless user or an attacker would.
#
#   scripts/robustness-campaign.sh [OUT_DIR]         (default: a new temporary directory)
#
# Every command gets missing, garbage, negative, zero, NaN and huge option values (one at a time, on an otherwise
# valid command line), and mutated inputs: model files (.safetensors, .pth, rwkv.cpp .bin from ../shared/oracle,
# copied to a temporary directory), vocab files, binidx / mask / meta files, malformed jsonl, and corrupted run
# directories for `finetune --resume`. Each case runs under `timeout` with LONGRWKV_JAVA_OPTS=-Xmx512m and is
# classified:
#   clean    exit 2 and exactly one stderr line, starting 'error:', with no Java class name
#   success  exit 0
#   crash    any other exit, a stack trace, or an exit-2 error with more than one stderr line ("unclean")
#   hang     killed by the timeout
#   oom      out of memory (OutOfMemoryError, or the one-line 'out of memory' error)
#   leak     a Java class name or internal detail on stderr (java., Exception, com.google, picocli, .tmp)
# Known answers: some cases must NOT succeed (a safetensors header one byte short, a truncated tensor, a token
# outside the vocabulary, a resume with another config, ...); a success there is a silent wrong result ("wrong").
#
# Prints the table and the failing cases, writes OUT_DIR/cases.csv (one row per case) and keeps each case's
# stdout/stderr under OUT_DIR/cases/. Not part of CI. CAMPAIGN_JOBS (default 2) cases run at a time;
# CAMPAIGN_TIMEOUT (default 30) seconds per case; CAMPAIGN_FILTER=REGEX runs only the cases whose id matches.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
launcher="${LONGRWKV:-$root/scripts/longrwkv}"
oracle="${ORACLE_DIR:-$root/../shared/oracle}"
[ -d "$oracle" ] || oracle=/work/shared/oracle
jobs="${CAMPAIGN_JOBS:-2}"
case_timeout="${CAMPAIGN_TIMEOUT:-30}"
filter="${CAMPAIGN_FILTER:-}"
W="${1:-$(mktemp -d /tmp/longrwkv-campaign.XXXXXX)}"
mkdir -p "$W"
W="$(cd "$W" && pwd)"
case "$W" in "$root"|"$root"/*) echo "campaign: OUT_DIR must be outside the repository" >&2; exit 1 ;; esac
export LONGRWKV_JAVA_OPTS="-Xmx512m"   # plus, once the inputs exist, start-up flags only (see below)
export LONGRWKV_NO_PROGRESS=1
start=$SECONDS

[ -f "$root/cli/target/longrwkv.jar" ] || (cd "$root" && mvn -o -q -B -ntp package -DskipTests) || exit 1
command -v python3 > /dev/null || { echo "campaign: needs python3 for the mutations" >&2; exit 1; }

F="$W/inputs"
mkdir -p "$F" "$W/cases"
lw() { "$launcher" "$@"; }

# ---------------------------------------------------------------------------------------------------------------
echo "== inputs in $F"
cp "$oracle/tiny-rwkv-5v2-730K-FP32.bin" "$oracle/tiny-rwkv-5v2-730K-FP16.bin" "$oracle/rwkv_vocab_v20230424.txt" "$F/"
V="$F/rwkv_vocab_v20230424.txt"
CPP="$F/tiny-rwkv-5v2-730K-FP32.bin"
M="$F/m.safetensors"
PTH="$F/m.pth"
PK="$F/pk"
{
  lw init --layers 1 --embd 32 --head-size 16 --vocab 256 --out "$M"
  lw convert "$M" "$PTH" --dtype fp32
  cp "$M" "$F/m-same.safetensors"   # convert-same-file rewrites its input: not the model the other cases use
  lw data synth passkey --tokenizer bytes --lengths 256 --count 8 --out "$PK"
  printf '{"text": "the quick brown fox jumps over the lazy dog. %s"}\n' $(seq 1 40) > "$F/t.jsonl"
  lw data build --input "$F/t.jsonl" --format text --tokenizer bytes --out "$F/tb"
  lw finetune --model "$M" --data "$PK" --ctx-len 256 --chunk-len 64 --steps 4 --save-every 1 --out "$F/run"
  lw finetune --model "$M" --data "$PK" --ctx-len 256 --chunk-len 64 --steps 1 --mode lora --lora-r 2 --out "$F/lora"
  lw state-tune --model "$M" --data "$PK" --ctx-len 256 --chunk-len 64 --steps 1 --out "$F/st"
} > "$W/setup.log" 2>&1 || { echo "campaign: setup failed, see $W/setup.log" >&2; tail -5 "$W/setup.log" >&2; exit 1; }
# the run stops at step 2 of 4: --resume has two steps left to train
rm -rf "$F/run/checkpoints/step-00000003" "$F/run/checkpoints/step-00000004" "$F/run/rwkv-final.pth"
printf 'step-00000002\n' > "$F/run/checkpoints/latest"
LORA="$(ls "$F"/lora/lora-final.pth)"
STATE="$(ls "$F"/st/state-final.pth)"
printf 'hello world\n' > "$F/hello.txt"
printf 'hello\n/quit\n' > "$F/chat.txt"

# mutated files: python, seeded, so that every run tries the same inputs
python3 - "$F" <<'PY'
import json, os, random, shutil, struct, sys
F = sys.argv[1]
rnd = random.Random(20260101)
mut = os.path.join(F, "mut"); os.makedirs(mut, exist_ok=True)
def data(p): return open(p, "rb").read()
def put(name, b):
    with open(os.path.join(mut, name), "wb") as f: f.write(b)
def generic(src, stem, ext, flips_head=8, flips_any=4):
    b = data(src)
    put(f"{stem}-empty{ext}", b"")
    for cut in sorted({7, 64, len(b) // 2, len(b) - 1}):
        if 0 < cut < len(b): put(f"{stem}-trunc{cut}{ext}", b[:cut])
    put(f"{stem}-garbage{ext}", bytes(rnd.randrange(256) for _ in range(4096)))
    put(f"{stem}-appended{ext}", b + b"\x00" * 100)
    for i in range(flips_head + flips_any):   # a few bytes changed: in the header region, then anywhere
        m = bytearray(b)
        lim = min(len(b), 4096) if i < flips_head else len(b)
        for _ in range(rnd.randint(1, 6)):
            m[rnd.randrange(lim)] = rnd.randrange(256)
        put(f"{stem}-flip{i}{ext}", bytes(m))
# safetensors: targeted header mutations
st = data(os.path.join(F, "m.safetensors"))
hl = struct.unpack("<Q", st[:8])[0]
hdr = json.loads(st[8:8 + hl]); body = st[8 + hl:]
generic(os.path.join(F, "m.safetensors"), "st", ".safetensors", 4, 2)
def st_with(h, name, extra=b""):
    j = json.dumps(h).encode(); put(name, struct.pack("<Q", len(j)) + j + body + extra)
put("st-known-header-one-short.safetensors", struct.pack("<Q", hl - 1) + st[8:])
put("st-hlen-zero.safetensors", struct.pack("<Q", 0) + st[8:])
put("st-hlen-huge.safetensors", struct.pack("<Q", 2**62) + st[8:])
put("st-hlen-filesize.safetensors", struct.pack("<Q", len(st)) + st[8:])
put("st-known-body-one-short.safetensors", st[:-1])
keys = [k for k in hdr if k != "__metadata__"]
k0 = keys[0]; big = max(keys, key=lambda k: hdr[k]["data_offsets"][1] - hdr[k]["data_offsets"][0])
h = json.loads(json.dumps(hdr)); h[big]["dtype"] = "F64"; st_with(h, "st-dtype-f64.safetensors")
h = json.loads(json.dumps(hdr)); h[big]["dtype"] = "Q4"; st_with(h, "st-dtype-q4.safetensors")
h = json.loads(json.dumps(hdr)); h[big]["shape"] = [7, 3]; st_with(h, "st-known-shape-mismatch.safetensors")
h = json.loads(json.dumps(hdr)); h[big]["shape"] = [-1, 32]; st_with(h, "st-shape-negative.safetensors")
h = json.loads(json.dumps(hdr)); h[big]["shape"] = [2**40, 2**40]; st_with(h, "st-shape-huge.safetensors")
h = json.loads(json.dumps(hdr)); h[big]["data_offsets"] = [0, len(body) + 4096]; st_with(h, "st-known-offsets-past-end.safetensors")
h = json.loads(json.dumps(hdr)); h[big]["data_offsets"] = [-8, 8]; st_with(h, "st-offsets-negative.safetensors")
h = json.loads(json.dumps(hdr)); del h[k0]; st_with(h, "st-known-missing-tensor.safetensors")
h = json.loads(json.dumps(hdr)); h[big]["data_offsets"] = h[big]["data_offsets"][:1]; st_with(h, "st-offsets-short.safetensors")
h = json.loads(json.dumps(hdr)); h["__metadata__"] = {"format": ["not", "a", "string"]}; st_with(h, "st-metadata-bad.safetensors")
put("st-header-not-json.safetensors", struct.pack("<Q", hl) + b"{" + b"x" * (hl - 1) + body)
put("st-header-array.safetensors", struct.pack("<Q", 2) + b"[]" + body)
nan = bytearray(st); off = 8 + hl + hdr[big]["data_offsets"][0]
nan[off:off + 8] = struct.pack("<ff", float("nan"), float("inf")); put("st-nan-weights.safetensors", bytes(nan))
# .pth (zip)
generic(os.path.join(F, "m.pth"), "pth", ".pth", 4, 2)
p = data(os.path.join(F, "m.pth"))
i = p.find(b"data.pkl")
if i > 0:
    m = bytearray(p); j = p.find(b"\x80\x02", i)
    if j > 0:
        m[j + 2:j + 10] = b"\xff" * 8; put("pth-pickle-garbage.pth", bytes(m))
put("pth-known-trunc-end.pth", p[:-1])
put("pth-no-central-directory.pth", p[:p.rfind(b"PK\x01\x02")] if b"PK\x01\x02" in p else p[:-22])
# rwkv.cpp .bin: int32 header magic, version, n_vocab, n_embed, n_layer, data_type
cpp = data(os.path.join(F, "tiny-rwkv-5v2-730K-FP32.bin"))
generic(os.path.join(F, "tiny-rwkv-5v2-730K-FP32.bin"), "cpp", ".bin", 3, 1)
for idx, name in enumerate(["magic", "version", "vocab", "embed", "layer", "dtype"]):
    for v, tag in ([(0x7fffffff, "huge"), (0, "zero")] if idx in (2, 3, 4) else [(0x7fffffff, "huge")]):
        m = bytearray(cpp); m[4 * idx:4 * idx + 4] = struct.pack("<I", v); put(f"cpp-{name}-{tag}.bin", bytes(m))
put("cpp-known-trunc-end.bin", cpp[:-1])
# vocab files
voc = data(os.path.join(F, "rwkv_vocab_v20230424.txt")).split(b"\n")
def vput(name, lines): put(name, b"\n".join(lines))
vput("vocab-empty.txt", [])
vput("vocab-trunc-half.txt", voc[:len(voc) // 2])
m = list(voc); m[100] = b"not a vocab line"; vput("vocab-known-bad-line.txt", m)
m = list(voc); m[200] = m[200].replace(b"'", b"", 1); vput("vocab-unclosed-quote.txt", m)
m = list(voc); m[300] = voc[301]; vput("vocab-known-duplicate.txt", m)
m = list(voc); parts = m[400].split(b" "); parts[-1] = b"99"; m[400] = b" ".join(parts); vput("vocab-known-wrong-length.txt", m)
m = list(voc); parts = m[500].split(b" "); parts[0] = b"9999999"; m[500] = b" ".join(parts); vput("vocab-huge-id.txt", m)
m = list(voc); parts = m[600].split(b" "); parts[0] = b"-5"; m[600] = b" ".join(parts); vput("vocab-negative-id.txt", m)
m = list(voc); m[700] = b"\xff\xfe\x00garbage"; vput("vocab-binary-line.txt", m)
put("vocab-garbage.txt", bytes(rnd.randrange(256) for _ in range(20000)))
m = list(voc); m[800] = m[800] + b" extra"; vput("vocab-extra-field.txt", m)
# binidx datasets: copies of PK with one part mutated
pk = os.path.join(F, "pk")
def ds(name, part=None, content=None, drop=None):
    d = os.path.join(mut, "ds-" + name)
    for ext in (".bin", ".idx", ".mask", ".meta.json", ".samples.jsonl"):
        if os.path.exists(pk + ext): shutil.copy(pk + ext, d + ext)
    if drop: os.remove(d + drop)
    if part: open(d + part, "wb").write(content)
binb, idxb, maskb = data(pk + ".bin"), data(pk + ".idx"), data(pk + ".mask")
ds("known-bin-trunc", ".bin", binb[:-2])
ds("bin-empty", ".bin", b"")
ds("bin-odd", ".bin", binb + b"\x01")
ds("idx-empty", ".idx", b"")
ds("idx-trunc", ".idx", idxb[:len(idxb) // 2])
ds("idx-magic", ".idx", b"XXIDIDX\x00\x00" + idxb[9:])
m = bytearray(idxb); m[9:17] = struct.pack("<Q", 99); ds("idx-version", ".idx", bytes(m))
m = bytearray(idxb); m[17] = 99; ds("idx-dtype", ".idx", bytes(m))
m = bytearray(idxb); m[18:26] = struct.pack("<Q", 2**40); ds("idx-count-huge", ".idx", bytes(m))
m = bytearray(idxb); m[34:38] = struct.pack("<i", 2**31 - 1); ds("known-idx-size-huge", ".idx", bytes(m))
m = bytearray(idxb); m[34:38] = struct.pack("<i", -5); ds("idx-size-negative", ".idx", bytes(m))
ds("known-mask-trunc", ".mask", maskb[:-3])
ds("mask-empty", ".mask", b"")
ds("mask-values", ".mask", bytes([7]) * len(maskb))
ds("meta-garbage", ".meta.json", b"{not json")
ds("meta-empty", ".meta.json", b"")
ds("meta-array", ".meta.json", b"[1,2,3]")
ds("meta-missing", drop=".meta.json")
ds("idx-missing", drop=".idx")
m = bytearray(binb); m[10:12] = struct.pack("<H", 60000); ds("known-token-outside-vocab", ".bin", bytes(m))
# jsonl for data build
J = [("known-not-json", b'{"text": "a"}\n{"text": \n'), ("empty", b""), ("known-missing-field", b'{"txt": "a"}\n'),
     ("known-wrong-type", b'{"text": 5}\n'), ("bom", b'\xef\xbb\xbf{"text": "a"}\n'), ("known-invalid-utf8", b'{"text": "\xff\xfe"}\n'),
     ("array", b'[1, 2]\n'), ("nul", b'{"text": "a\x00b"}\n'), ("blank-lines", b'\n\n{"text": "a"}\n\n'),
     ("deep", b'[' * 100000 + b']' * 100000 + b'\n'), ("long-line", b'{"text": "' + b"x" * 3_000_000 + b'"}\n'),
     ("chat-bad-role", b'{"messages": [{"role": 5, "content": "x"}]}\n'), ("chat-empty", b'{"messages": []}\n'),
     ("escape", b'{"text": "\\ud800"}\n')]
for n, b in J: put(f"jsonl-{n}.jsonl", b)
PY

# corrupted run directories for finetune --resume (each case gets its own copy)
mkrun() {   # mkrun NAME: a copy of the stopped run to mutate
  rm -rf "$F/runs/$1"; mkdir -p "$F/runs"; cp -r "$F/run" "$F/runs/$1"; echo "$F/runs/$1"
}
R=$(mkrun ok)
R=$(mkrun latest-missing-dir); printf 'step-00000009\n' > "$R/checkpoints/latest"
R=$(mkrun latest-garbage); printf '../../../../etc\n' > "$R/checkpoints/latest"
R=$(mkrun latest-empty); : > "$R/checkpoints/latest"
R=$(mkrun latest-deleted); rm "$R/checkpoints/latest"
R=$(mkrun no-checkpoints); rm -rf "$R/checkpoints"
R=$(mkrun known-trainable-trunc); head -c 100 "$F/run/checkpoints/step-00000002/trainable.safetensors" > "$R/checkpoints/step-00000002/trainable.safetensors"
R=$(mkrun optimizer-missing); rm "$R/checkpoints/step-00000002/optimizer.safetensors"
R=$(mkrun known-optimizer-trunc); head -c 200 "$F/run/checkpoints/step-00000002/optimizer.safetensors" > "$R/checkpoints/step-00000002/optimizer.safetensors"
R=$(mkrun trainer-json-garbage); printf '{"step": "x",' > "$R/checkpoints/step-00000002/trainer.json"
R=$(mkrun trainer-json-empty); : > "$R/checkpoints/step-00000002/trainer.json"
R=$(mkrun trainer-json-step-negative); sed -E 's/"step" *: *[0-9]+/"step": -4/' "$F/run/checkpoints/step-00000002/trainer.json" > "$R/checkpoints/step-00000002/trainer.json"
R=$(mkrun metrics-garbage); printf 'garbage\n' >> "$R/metrics.jsonl"
R=$(mkrun known-other-config)
R=$(mkrun known-other-data)
R=$(mkrun run-is-a-file); rm -rf "$R"; printf 'x' > "$R"

# ---------------------------------------------------------------------------------------------------------------
# Cases: one line each in $W/cases.list: ID<TAB>EXPECT<TAB>STDIN<TAB>ARGS (printf %q). EXPECT: any (clean error or
# success both fine), fail (must not exit 0: a known wrong input), ok (must succeed).
: > "$W/cases.list"
n=0
add() {   # add ID EXPECT STDIN ARGS...
  local id="$1" expect="$2" stdin="$3"; shift 3
  [ -n "$filter" ] && ! [[ "$id" =~ $filter ]] && return
  n=$((n + 1))
  printf '%04d-%s\t%s\t%s\t%s\n' "$n" "$id" "$expect" "$stdin" "$(printf '%q ' "$@")" >> "$W/cases.list"
}
O='@OUT@'   # replaced by the case's own directory

# Valid command lines, one per command: each is a case itself (it must succeed), and the base of the option fuzz.
declare -A base base_in
base[forward]="forward --model $M --tokens 1,2,3"
base[forward-text]="forward --model $M --text hello"
base[init]="init --layers 1 --embd 32 --head-size 16 --vocab 256 --out $O/init.safetensors"
base[inspect]="inspect $M"
base[convert]="convert $M $O/c.pth"
base[tokenize]="tokenize --tokenizer world:$V"; base_in[tokenize]="$F/hello.txt"
base[data-build]="data build --input $F/t.jsonl --format text --tokenizer bytes --out $O/b"
base[data-pack]="data pack --data $F/tb --seq-len 512 --out $O/p"
base[data-synth]="data synth passkey --tokenizer bytes --lengths 256 --count 2 --out $O/s"
base[data-stats]="data stats $PK"
base[finetune]="finetune --model $M --data $PK --ctx-len 256 --chunk-len 64 --steps 1 --out $O/ft"
base[lora-merge]="lora merge --model $M --lora $LORA --out $O/merged.pth"
base[state-tune]="state-tune --model $M --data $PK --ctx-len 256 --chunk-len 64 --steps 1 --out $O/st"
base[eval-passkey]="eval passkey --model $M --lengths 256 --depths 50 --trials 1 --out $O/e"
base[eval-niah]="eval niah --model $M --lengths 512 --depths 50 --trials 1 --out $O/e"
base[eval-position-loss]="eval position-loss --model $M --data $PK --ctx-len 128 --docs 1 --out $O/e"
base[generate]="generate --model $M --prompt hi --max-tokens 4"
base[chat]="chat --model $M --max-tokens 4"; base_in[chat]="$F/chat.txt"
base[debug-dump]="debug dump --model $M --tokens 1,2,3 --out $O/d.safetensors"
base[bench-matmul]="bench matmul --reps 1 --tokens 16 --embd 64 --vocab 256"
base[bench-wkv]="bench wkv --heads 2 --head-size 16 --tokens 16 --reps 1"
base[bench-model]="bench model --layers 1 --embd 32 --head-size 16 --vocab 256 --tokens 16 --reps 1"
base[bench-train]="bench train --layers 1 --embd 32 --head-size 16 --vocab 256 --ctx-len 32 --chunk-len 16 --reps 1"
base[bench-memory]="bench memory --layers 1 --embd 32 --head-size 16 --vocab 256 --chunk-len 16 --lengths 32,64"
base[bench-tokenizer]="bench tokenizer --tokenizer world:$V --mb 0.02 --reps 1"

# options where a huge value only means more work (a long run is not a bug): no huge values for these
slow_when_huge='^--(steps|tokens|count|trials|reps|max-new-tokens|max-tokens|docs|mb|lengths|seq-len|ctx-len|layers|embd|vocab|heads|head-size|lora-r|micro-batch|grad-accum|needles|sample-tokens|threads|top|warmup|buckets-per-octave)$'
family() {   # commands that share the code of their options: fuzz each option once per family
  case "$1" in finetune|state-tune) echo train ;; eval-*|generate|chat) echo eval ;; bench-*) echo bench ;;
    forward*) echo forward ;; *) echo "$1" ;; esac
}
declare -A fuzzed
third=(-1 0 NaN -1 "" 99999999999999999999 -1 1e308)
k=0
for name in $(printf '%s\n' "${!base[@]}" | sort); do
  read -ra args <<< "${base[$name]}"
  stdin="${base_in[$name]:-/dev/null}"
  add "$name-valid" ok "$stdin" "${args[@]}"
  # the command with nothing, and with --help
  cmd=("${args[0]}"); [[ "${args[1]:-}" =~ ^[a-z] ]] && [[ ! "${args[1]}" =~ / ]] && cmd+=("${args[1]}")
  [[ "$name" == bench-* ]] || add "$name-noargs" any /dev/null "${cmd[@]}"   # bench without options: the full benchmark
  # its options, from its --help: each value-taking option with each nonsense value, one at a time
  mapfile -t opts < <(lw "${cmd[@]}" --help 2>/dev/null | grep -oE '^ {2,6}(-[a-zA-Z], )?--[a-z0-9-]+(=[^ ]+)?' \
      | sed -E 's/^ +(-[a-zA-Z], )?//' | sort -ru | awk -F= '!seen[$1]++')
  for o in "${opts[@]}"; do
    opt="${o%%=*}"
    [[ "$opt" == --help || "$opt" == --version ]] && continue
    if [[ "$o" != *=* ]]; then   # a flag: given twice, and with a value
      add "$name$opt-twice" any "$stdin" "${args[@]}" "$opt" "$opt"
      add "$name$opt=value" any "$stdin" "${args[@]}" "$opt=3"; continue
    fi
    key="$(family "$name")$opt"
    [ -n "${fuzzed[$key]:-}" ] && continue
    fuzzed[$key]=1
    # garbage, and one of negative / zero / NaN / empty / huge (in turn over the options); an endless
    # file where a model, state, dataset or vocab is read (never where something is written)
    x="${third[$((k % ${#third[@]}))]}"; k=$((k + 1))
    [[ "$x" =~ ^(99999999999999999999|1e308)$ && "$opt" =~ $slow_when_huge ]] && x=-1
    [[ "$opt" =~ ^--(model|state|lora|data|resume|config|init|targets|mask)$ ]] && x=/dev/zero
    values=(garbage "$x")
    for v in "${values[@]}"; do
      new=(); replaced=0
      for ((i = 0; i < ${#args[@]}; i++)); do
        if [[ "${args[$i]}" == "$opt" ]]; then new+=("$opt" "$v"); i=$((i + 1)); replaced=1; else new+=("${args[$i]}"); fi
      done
      [ $replaced = 1 ] || new+=("$opt" "$v")
      tag="$v"; [ -z "$v" ] && tag=empty; tag="${tag//\//_}"
      add "$name$opt=$tag" any "$stdin" "${new[@]}"
    done
  done
done

# positional arguments and special files
for f in /dev/zero /dev/null /nonexistent/x "$F" "$F/t.jsonl"; do
  t="${f//\//_}"
  add "inspect-file$t" any /dev/null inspect "$f"
  add "forward-model$t" any /dev/null forward --model "$f" --tokens 1
  add "data-stats-prefix$t" any /dev/null data stats "$f"
done
add "convert-same-file" any /dev/null convert "$F/m-same.safetensors" "$F/m-same.safetensors"
add "convert-unknown-ext" any /dev/null convert "$M" "$O/x.txt"
add "convert-too-many" any /dev/null convert "$M" "$O/a.pth" "$O/b.pth"
printf '1 2 999\n' > "$W/ids-big.txt"
add "tokenize-decode-known-outside-vocab" fail "$W/ids-big.txt" tokenize --tokenizer bytes --decode
printf '1 -2 3\n' > "$W/ids-neg.txt"; add "tokenize-decode-negative" fail "$W/ids-neg.txt" tokenize --tokenizer bytes --decode
printf 'a b c\n' > "$W/ids-text.txt"; add "tokenize-decode-garbage" fail "$W/ids-text.txt" tokenize --tokenizer bytes --decode
head -c 4096 /dev/urandom > "$W/random.bin"
add "tokenize-binary-stdin" any "$W/random.bin" tokenize --tokenizer "world:$V"
add "forward-known-token-outside-vocab" fail /dev/null forward --model "$M" --tokens 1,256
add "forward-tokens-negative" fail /dev/null forward --model "$M" --tokens 1,-3
add "debug-known-mask-length" fail /dev/null debug dump --model "$M" --tokens 1,2,3 --mask 1,0 --out "$O/d.safetensors"
add "eval-known-depth-over-100" fail /dev/null eval passkey --model "$M" --lengths 256 --depths 120 --out "$O/e"
add "config-missing" any /dev/null finetune --config /nonexistent.properties --model "$M" --data "$PK" --ctx-len 256 --steps 1 --out "$O/ft"
printf 'steps=big\n' > "$W/bad.properties"
add "config-bad-value" fail /dev/null finetune --config "$W/bad.properties" --model "$M" --data "$PK" --ctx-len 256 --out "$O/ft"
printf 'ctx-len=\\u12\n' > "$W/bad2.properties"
add "config-bad-escape" fail /dev/null finetune --config "$W/bad2.properties" --model "$M" --data "$PK" --steps 1 --out "$O/ft"

# mutated model files
for f in "$F"/mut/st-*.safetensors "$F"/mut/pth-*.pth "$F"/mut/cpp-*.bin; do
  b="$(basename "$f")"; expect=any; [[ "$b" == *known* ]] && expect=fail
  add "model-$b-inspect" "$expect" /dev/null inspect "$f"
  add "model-$b-forward" "$expect" /dev/null forward --model "$f" --tokens 1,2
done
for f in "$F"/mut/st-{flip1,trunc64,known-header-one-short}.safetensors "$F"/mut/pth-{flip2,known-trunc-end}.pth "$F"/mut/cpp-{trunc64,known-trunc-end}.bin; do
  b="$(basename "$f")"; expect=any; [[ "$b" == *known* ]] && expect=fail
  add "model-$b-convert" "$expect" /dev/null convert "$f" "$O/c.safetensors"
  add "model-$b-eval" "$expect" /dev/null eval passkey --model "$f" --tokenizer "world:$V" --lengths 256 --depths 50 --trials 1 --out "$O/e"
done
add "state-truncated" fail /dev/null forward --model "$M" --tokens 1,2 --state "$F/mut/st-trunc64.safetensors"
add "state-is-a-model" any /dev/null forward --model "$M" --tokens 1,2 --state "$PTH"
add "lora-is-a-model" any /dev/null lora merge --model "$M" --lora "$PTH" --out "$O/m.pth"
add "lora-other-base" any /dev/null lora merge --model "$CPP" --lora "$LORA" --out "$O/m.pth"

# mutated vocab files
for f in "$F"/mut/vocab-*.txt; do
  b="$(basename "$f")"; expect=any; [[ "$b" == *known* ]] && expect=fail
  add "vocab-$b-tokenize" "$expect" "$F/hello.txt" tokenize --tokenizer "world:$f"
done
add "vocab-garbage-bench" any /dev/null bench tokenizer --tokenizer "world:$F/mut/vocab-garbage.txt" --mb 0.01 --reps 1

# mutated datasets
for d in "$F"/mut/ds-*.bin; do
  p="${d%.*}"; b="$(basename "$p")"; expect=any; [[ "$b" == *known* ]] && expect=fail
  add "data-$b-stats" "$expect" /dev/null data stats "$p"
  add "data-$b-finetune" "$expect" /dev/null finetune --model "$M" --data "$p" --ctx-len 256 --chunk-len 64 --steps 1 --out "$O/ft"
  [[ "$b" =~ (idx|mask)-(trunc|empty|magic|count-huge) ]] && add "data-$b-pack" any /dev/null data pack --data "$p" --seq-len 512 --out "$O/p"
done
for b in known-bin-trunc known-idx-size-huge known-token-outside-vocab; do
  add "data-ds-$b-position-loss" fail /dev/null eval position-loss --model "$M" --data "$F/mut/ds-$b" --ctx-len 128 --docs 1 --out "$O/e"
done

# malformed jsonl
for f in "$F"/mut/jsonl-*.jsonl; do
  b="$(basename "$f")"; expect=any; [[ "$b" == *known* ]] && expect=fail
  fmt=text; [[ "$b" == *chat* ]] && fmt=chat
  add "jsonl-$b-build" "$expect" /dev/null data build --input "$f" --format "$fmt" --tokenizer bytes --out "$O/b"
done
add "jsonl-known-not-json-skip-bad" any /dev/null data build --input "$F/mut/jsonl-known-not-json.jsonl" --format text --tokenizer bytes --skip-bad --out "$O/b"

# corrupted run directories
for r in "$F"/runs/*; do
  b="$(basename "$r")"; expect=any; [[ "$b" == *known* ]] && expect=fail; [ "$b" = ok ] && expect=ok
  extra=(); [ "$b" = known-other-config ] && extra=(--lr 0.5)
  data="$PK"; [ "$b" = known-other-data ] && data="$F/tb"
  add "resume-$b" "$expect" /dev/null finetune --model "$M" --data "$data" --ctx-len 256 --chunk-len 64 --steps 4 --save-every 1 \
      "${extra[@]}" --resume "$r"
done

# JVM start-up is most of a case's time: a class-data-sharing archive of this jar, made by one real run, and the
# quick C1 compiler, cut it by half or more. They change nothing the commands do; the heap stays capped at 512 MB.
"$launcher" --version > /dev/null 2>&1
LONGRWKV_JAVA_OPTS="-Xmx512m -XX:ArchiveClassesAtExit=$W/cds.jsa -Xlog:disable" \
  "$launcher" finetune --model "$M" --data "$PK" --ctx-len 256 --chunk-len 64 --steps 1 --out "$W/cds-run" > /dev/null 2>&1
[ -f "$W/cds.jsa" ] && export LONGRWKV_JAVA_OPTS="-Xmx512m -XX:SharedArchiveFile=$W/cds.jsa -XX:TieredStopAtLevel=1 -Xlog:disable"

total=$(wc -l < "$W/cases.list")
echo "== $total cases, $jobs at a time, ${case_timeout}s each at most (setup took $((SECONDS - start))s)"
[ -n "${CAMPAIGN_LIST_ONLY:-}" ] && { cut -f1 "$W/cases.list"; exit 0; }

# ---------------------------------------------------------------------------------------------------------------
run_case() {   # run_case LINE: runs one case and writes its CSV row to cases/ID/row.csv
  local line="$1" id expect stdin argstr
  IFS=$'\t' read -r id expect stdin argstr <<< "$line"
  local dir="$W/cases/$id"
  rm -rf "$dir"; mkdir -p "$dir/out"
  argstr="${argstr//@OUT@/$dir/out}"
  eval "local -a args=($argstr)"
  local t0=$SECONDS rc
  # stderr through a pipe: cat ends only when every writer is done (the launcher filters stderr in a background
  # process that can still be writing when the launcher has exited)
  (cd "$dir/out" && timeout -k 5 "$case_timeout" "$launcher" "${args[@]}" < "$stdin" 2>&1 > "$dir/stdout" | cat > "$dir/stderr"
   exit "${PIPESTATUS[0]}")
  rc=$?
  local secs=$((SECONDS - t0))
  local lines first cls
  lines=$(grep -c . "$dir/stderr")
  first=$(grep -m1 . "$dir/stderr" | tr -d '\r' | cut -c1-300)
  local shown; shown=$(grep -m1 '^error:' "$dir/stderr" | cut -c1-300); [ -n "$shown" ] || shown="$first"
  if [ $rc = 124 ] || [ $rc = 137 ]; then cls=hang
  elif grep -qE 'OutOfMemoryError|out of memory' "$dir/stderr"; then cls=oom
  elif grep -qE 'java\.|javax\.|Exception|com\.google|picocli|\.tmp\b|^\s+at [a-zA-Z]' "$dir/stderr"; then cls=leak
  elif [ $rc = 0 ]; then cls=success
  elif [ $rc = 2 ] && [ "$lines" = 1 ] && [[ "$first" == error:* ]]; then cls=clean
  else cls=crash
  fi
  local verdict=pass
  case "$cls" in crash|hang|oom|leak) verdict=FAIL ;; esac
  [ "$expect" = fail ] && [ "$cls" = success ] && verdict="FAIL(wrong: exit 0 on a known-bad input)"
  [ "$expect" = ok ] && [ "$cls" != success ] && verdict="FAIL(expected success)"
  [ "$cls" = crash ] && [ $rc = 2 ] && [[ "$first" == error:* ]] && verdict="FAIL(unclean: $lines stderr lines)"
  local cmdline; cmdline="${args[*]}"; cmdline="${cmdline//$W/\$W}"
  shown="${shown//$W/\$W}"
  printf '%s,%s,%s,%s,%s,%s,%s,"%s","%s"\n' "$id" "$expect" "$cls" "$rc" "$secs" "$lines" "${verdict%%(*}" \
    "${cmdline//\"/\"\"}" "${shown//\"/\"\"}" > "$dir/row.csv"
  [[ "$verdict" == FAIL* ]] && printf '%s\n' "$verdict" > "$dir/verdict"
  rm -rf "$dir/out"
}
export -f run_case
export W launcher case_timeout

tr '\n' '\0' < "$W/cases.list" | xargs -0 -P "$jobs" -I{} bash -c 'run_case "$1"' _ {}

# ---------------------------------------------------------------------------------------------------------------
csv="$W/cases.csv"
echo 'id,expect,class,exit,seconds,stderr_lines,verdict,command,error_or_first_stderr_line' > "$csv"
cat "$W"/cases/*/row.csv >> "$csv" 2>/dev/null
count() { awk -F, -v c="$1" 'NR > 1 && $3 == c' "$csv" | wc -l; }
wrong=$(awk -F, 'NR > 1 && $2 == "fail" && $3 == "success"' "$csv" | wc -l)
failing=$(awk -F, 'NR > 1 && $7 == "FAIL"' "$csv" | wc -l)
echo
printf '%-30s %6s\n' "inputs tried" "$(($(wc -l < "$csv") - 1))" "clean errors" "$(count clean)" "successes" "$(count success)" \
  "crashes (incl. unclean errors)" "$(count crash)" "hangs" "$(count hang)" "OOM" "$(count oom)" \
  "class names leaked" "$(count leak)" "wrong: exit 0 on known-bad" "$wrong" "failing cases" "$failing"
echo
echo "failing cases (id: verdict: command -> its error line, else its first stderr line):"
for v in "$W"/cases/*/verdict; do
  [ -f "$v" ] || continue
  d="$(dirname "$v")"; id="$(basename "$d")"
  awk -F'"' -v id="$id" -v v="$(cat "$v")" '{ printf "  %s: %s: longrwkv %s -> %s\n", id, v, $2, $4 }' "$d/row.csv"
done
printf '\n%d cases in %dm%02ds; per-case CSV: %s; stdout/stderr of each: %s/cases/ID/\n' "$total" \
  $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$csv" "$W"
