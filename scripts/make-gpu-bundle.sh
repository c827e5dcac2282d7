#!/usr/bin/env bash
# Prepares everything scripts/gpu-check.sh needs on a GPU machine that may have no Java, Maven or network:
#   OUT/runtime/       a jlink-ed Java 17 runtime with just the modules the fat jar uses (+ jdk.incubator.vector)
#   OUT/longrwkv.jar   the fat jar (cli/target/longrwkv.jar; includes the bytedeco CUDA glue)
#   OUT/lib/           the core test jar (CudaParityTest, TestModels) and the JUnit console launcher
#   OUT/kernels/       prebuilt fatbins (sm_80, sm_90, sm_100 SASS + compute_100 PTX) when nvcc is here, so the GPU box needs no NVRTC to start
#   OUT/scripts/       gpu-check.sh, the longrwkv launcher and the JVM options both use (jvm-opts.sh)
#   OUT/gpu-check.sh   the script to run there (runs OUT/scripts/gpu-check.sh)
# and OUT.tar.gz next to it. Usage: scripts/make-gpu-bundle.sh [OUT] [--no-build]   (default OUT: target/gpu-bundle)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$root/target/gpu-bundle"
build=1
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    *) out="$(mkdir -p "$(dirname "$a")" && cd "$(dirname "$a")" && pwd)/$(basename "$a")" ;;
  esac
done
junit_console_version="1.14.1"   # the JUnit platform that goes with junit-jupiter 5.14.1 (pom.xml)

cd "$root"
if [ $build = 1 ] || [ ! -f cli/target/longrwkv.jar ]; then
  echo "make-gpu-bundle: building the fat jar and test jars..." >&2
  mvn -q -B -ntp install -DskipTests
fi
jar="$root/cli/target/longrwkv.jar"
tests_jar="$(ls "$root"/core/target/longrwkv-core-*-tests.jar | head -1)"
[ -f "$jar" ] && [ -f "$tests_jar" ] || { echo "make-gpu-bundle: missing $jar or the core test jar" >&2; exit 1; }

rm -rf "$out" "$out.tar.gz"
mkdir -p "$out/lib"
cp "$jar" "$out/longrwkv.jar"
# The fat jar carries JNI glue for every CUDA library of the presets (NPP, cuDNN, cuFFT ...), OpenBLAS's LAPACK build
# and oneDNN (the CPU's bf16 products: 90 MB); the GPU check uses only cudart (driver API), NVRTC, cuBLAS, NCCL and
# OpenBLAS's plain BLAS (without oneDNN the CPU backend widens bf16 into sgemm). Dropping the rest keeps the bundle
# well under 64 MiB. (Missing glue would only fail when that library is asked for.)
zip -q -d "$out/longrwkv.jar" \
    'org/bytedeco/cuda/linux-x86_64/libjninpp*' 'org/bytedeco/cuda/linux-x86_64/libjnicudnn*' \
    'org/bytedeco/cuda/linux-x86_64/libjnicufft*' 'org/bytedeco/cuda/linux-x86_64/libjnicusparse*' \
    'org/bytedeco/cuda/linux-x86_64/libjnicusolver*' 'org/bytedeco/cuda/linux-x86_64/libjnicurand*' \
    'org/bytedeco/cuda/linux-x86_64/libjnicupti*' 'org/bytedeco/cuda/linux-x86_64/libjnicufile*' \
    'org/bytedeco/cuda/linux-x86_64/libjninvml*' 'org/bytedeco/dnnl/linux-x86_64/*' 'org/bytedeco/opencl/linux-x86_64/*' \
    'org/bytedeco/cuda/linux-x86_64/libjninvblas*' 'org/bytedeco/cuda/linux-x86_64/libjninvcomp*' \
    'org/bytedeco/cuda/linux-x86_64/libjninvjpeg*' 'org/bytedeco/openblas/linux-x86_64/libjniopenblas_full.so' \
    'org/jline/nativ/FreeBSD/*' 'org/jline/nativ/Windows/*' 'org/jline/nativ/Mac/*' >/dev/null || true
cp "$tests_jar" "$out/lib/longrwkv-core-tests.jar"
mvn -q -B -ntp dependency:copy -Dartifact="org.junit.platform:junit-platform-console-standalone:$junit_console_version" \
    -DoutputDirectory="$out/lib" -Dmdep.stripVersion=true

# Modules: what jdeps finds in the jars, plus the ones reached only by reflection or flags.
jhome="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}"
# Modules for what gpu-check runs (backends, model, BPTT, JUnit console with XML reports). Not java.desktop: only the
# training charts (loss.png) use AWT, and it alone is 20 MB. Override with BUNDLE_MODULES=a,b,c.
mods="${BUNDLE_MODULES:-java.base,java.logging,java.management,java.naming,java.sql,java.xml,jdk.unsupported,jdk.zipfs,jdk.incubator.vector}"
"$jhome/bin/jlink" --add-modules "$mods" --strip-debug --no-man-pages --no-header-files --compress=2 --strip-native-debug-symbols=exclude-debuginfo-files \
    --output "$out/runtime"

if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  "$root/scripts/compile-kernels.sh" --out "$out/kernels"
else
  echo "make-gpu-bundle: no nvcc here; the GPU machine will compile the kernels with NVRTC" >&2
fi
mkdir -p "$out/scripts"
cp "$root/scripts/gpu-check.sh" "$root/scripts/longrwkv" "$root/scripts/jvm-opts.sh" "$out/scripts/"
printf '#!/usr/bin/env bash\nexec "$(dirname "${BASH_SOURCE[0]}")/scripts/gpu-check.sh" "$@"\n' > "$out/gpu-check.sh"
chmod +x "$out/gpu-check.sh" "$out/scripts/gpu-check.sh" "$out/scripts/longrwkv"
"$out/runtime/bin/java" --add-modules jdk.incubator.vector -jar "$out/longrwkv.jar" --version 2>&1 | grep -v '^WARNING: Using incubator' >&2 \
  || { echo "make-gpu-bundle: the bundled java cannot start the fat jar" >&2; exit 1; }
tar -C "$(dirname "$out")" -czf "$out.tar.gz" "$(basename "$out")"
echo "make-gpu-bundle: $out ($(du -sh "$out" | cut -f1)), $out.tar.gz ($(du -h "$out.tar.gz" | cut -f1)); modules: $mods"
