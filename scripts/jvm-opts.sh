# Sourced by scripts/longrwkv and scripts/gpu-check.sh so that every command loads the CUDA kernels exactly as the
# GPU check does. Sets the array JVM_OPTS from ROOT (the checkout or the bundle directory):
#   jdk.incubator.vector      SIMD kernels (Java 17 ships the Vector API as an incubator module)
#   javacpp maxBytes=0        tensors live in native memory; do not cap it at the Java heap size
#   MaxNewSize=128m           caps the young generation only (the heap's maximum, -Xmx, stays the JVM's default or
#                             yours): the training loop allocates ~150 MB/s of short-lived arrays (the Vector API's
#                             boxes before C2 compiles a loop), and ParallelGC grew the young generation to 0.4-0.9 GiB
#                             for them, all of it resident; capped, a young collection (1-2 ms, ~5 MB surviving) runs
#                             every 0.5-10 s instead and the process stays 128 MiB above its tensors plus a fixed base
#                             (MemoryPlan.hostHeapBytes, which counts this cap). Long-lived data (a dataset's index,
#                             large arrays) still goes to the old generation, which can grow to -Xmx; override with
#                             LONGRWKV_JAVA_OPTS=-XX:MaxNewSize=... (the later flag wins)
#   PerMethodTrapLimit=100000 keeps C2 speculating on the receiver class of every Vector API call. C2 adds up the
#                             deoptimisation traps recorded in the methods it inlines into one compilation (the
#                             compile log's "observe trap ... ccount"); above this limit (default 100) it stops
#                             inlining on profiled types in that whole compilation: each FloatVector.fma/add/fromArray
#                             becomes a guarded inline plus a virtual call, and every vector is boxed where the two
#                             paths meet. The Vector API's own load/store methods carry a few class-check traps each
#                             after warm-up (their fallback lambdas differ per element type and buffer kind), and a
#                             kernel that inlines ~20 loads reached 104-139 or stayed under 100 depending on how many
#                             traps had happened by the time it compiled: in 2 of 6 processes the WKV backward's small
#                             products were compiled that way, allocated ~9 GB/s of boxes (a young collection every
#                             13 ms) and ran 4.5x slower for the whole run. With the limit raised: 8 of 8 fast, no
#                             such compilation (README, "The WKV backward's slow mode"). Per-bytecode limits still apply.
#   longrwkv.cuda.kernels     prebuilt fatbins: $LONGRWKV_KERNELS, else ROOT/kernels (a GPU bundle), else
#                             ROOT/target/kernels (scripts/compile-kernels.sh --out target/kernels); each is used only
#                             when its recorded source hash matches the kernels in the jar
# and exports OPENBLAS_THREAD_TIMEOUT=4 unless set (it matters where OpenBLAS still runs its own threads: bench matmul's
# peak, -Dlongrwkv.sgemm.openblasThreads=true; the backend otherwise keeps OpenBLAS single-threaded, see Sgemm.java):
# after each sgemm OpenBLAS's worker threads spin for 2^28 cycles
# (its default) before sleeping, and on a 2-core machine that spinning took the core the CPU backend's own parallel ops
# (norms, cross-entropy, elementwise) were running on: a training step measured 10-13% faster with 4 (2^4 cycles).
# Likewise OMP_WAIT_POLICY=PASSIVE unless set, for oneDNN's OpenMP threads (the CPU's bf16 products): by default
# libgomp's idle workers spin after each product on the core the next Java op wants (README "CPU and bf16").
JVM_OPTS=(--add-modules jdk.incubator.vector -Dorg.bytedeco.javacpp.maxBytes=0 -Dorg.bytedeco.javacpp.maxPhysicalBytes=0 -Xss8m
          -XX:MaxNewSize=128m -XX:PerMethodTrapLimit=100000)
_kernels="${LONGRWKV_KERNELS:-}"
if [ -z "$_kernels" ]; then
  for _d in "$ROOT/kernels" "$ROOT/target/kernels"; do
    if compgen -G "$_d/*.fatbin" >/dev/null; then _kernels="$_d"; break; fi
  done
fi
[ -n "$_kernels" ] && JVM_OPTS+=("-Dlongrwkv.cuda.kernels=$_kernels")
unset _kernels _d
export OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
