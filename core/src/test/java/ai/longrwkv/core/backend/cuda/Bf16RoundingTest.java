package ai.longrwkv.core.backend.cuda;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * bf16.cu's conversions are CUDA's own: a host-side check against the toolkit's cuda_bf16.h (no device needed, so it
 * is not part of the suite that gpu-check.sh runs on a GPU). The device-side checks of the same kernels, against
 * Float16 and the CPU backend, are in CudaBf16Test.
 */
class Bf16RoundingTest {
    /**
     * bf16.cu's rounding and widening, compiled as the emulated device compiles them, against the CUDA toolkit's own
     * __float2bfloat16_rn and __bfloat162float (cuda_bf16.h's host implementation, in a separate translation unit):
     * every one of the 65536 upper halves with 20 lower halves each (all the tie and carry cases, NaN payloads only
     * in the low half, and random ones). Skipped where no CUDA toolkit headers are installed. (The whole 2^32 range
     * agreed as well, in a one-off run of the same two files: 13 s, too long for the suite.)
     */
    @Test
    void roundingIsCudasOwnFloat2Bfloat16Rn(@TempDir Path dir) throws Exception {
        Path include = null;
        for (String home : new String[]{System.getenv("CUDA_HOME"), System.getenv("CUDA_PATH"), "/usr/local/cuda"}) {
            if (home != null && Files.isRegularFile(Path.of(home, "include", "cuda_bf16.h"))) {
                include = Path.of(home, "include");
                break;
            }
        }
        assumeTrue(include != null, "no CUDA toolkit headers (cuda_bf16.h) under CUDA_HOME, CUDA_PATH or /usr/local/cuda");
        EmulatedDevice.writeSources(dir);
        Files.writeString(dir.resolve("ref.cpp"), """
                #include <cuda_bf16.h>
                #include <cstring>
                unsigned short cuda_round(float f) { __nv_bfloat16 r = __float2bfloat16_rn(f); unsigned short b; std::memcpy(&b, &r, 2); return b; }
                float cuda_widen(unsigned short b) { __nv_bfloat16 r; std::memcpy(&r, &b, 2); return __bfloat162float(r); }
                """);
        Files.writeString(dir.resolve("check.cpp"), """
                #include "bf16.cu"
                #include <cstdio>
                unsigned short cuda_round(float f);
                float cuda_widen(unsigned short b);
                int main() {
                    const unsigned lows[] = {0x0000, 0x0001, 0x0002, 0x3fff, 0x7ffe, 0x7fff, 0x8000, 0x8001, 0x8002, 0xbfff,
                                             0xfffe, 0xffff, 0x1234, 0x5a5a, 0x9e37, 0xc001, 0x4000, 0xc000, 0x0f0f, 0xf0f0};
                    unsigned long long checked = 0, bad = 0;
                    for (unsigned hi = 0; hi < 65536; hi++) {
                        for (unsigned lo : lows) {
                            unsigned x = hi << 16 | lo; float f; std::memcpy(&f, &x, 4);
                            unsigned short want = cuda_round(f), got = bf16_round(f);
                            float w = bf16_widen(got), w2 = cuda_widen(got);
                            checked++;
                            if (want != got || std::memcmp(&w, &w2, 4) != 0) {
                                if (bad++ < 5) std::printf("input 0x%08x: cuda 0x%04x, bf16.cu 0x%04x\\n", x, want, got);
                            }
                        }
                    }
                    std::printf("checked %llu, differ %llu\\n", checked, bad);
                    return bad != 0;
                }
                """);
        String cxx = EmulatedDevice.compiler();
        EmulatedDevice.run(List.of(cxx, "-std=c++17", "-O1", "-c", "-I", include.toString(), "ref.cpp", "-o", "ref.o"), dir);
        // the emulated device's own flags for kernel sources (cuda_emu.h first, no contraction)
        EmulatedDevice.run(List.of(cxx, "-std=c++17", "-O1", "-pthread", "-ffp-contract=off", "-include", "cuda_emu.h",
                "-I", dir.toString(), "check.cpp", "ref.o", "-o", "check"), dir);
        String out = EmulatedDevice.run(List.of(dir.resolve("check").toString()), dir);
        System.out.println(out.trim());
        assertTrue(out.contains("checked 1310720, differ 0"), out);
    }
}
