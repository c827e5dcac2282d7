package ai.longrwkv.core.backend.cuda;

import java.util.ArrayList;
import java.util.List;

/**
 * Compiles every kernel module with NVRTC exactly as {@link DriverDevice} does at run time ({@link Nvrtc#compile}:
 * the same source bytes, headers and options) for each architecture given, and prints one line per compilation.
 * Exit code 1 when any compilation fails. Run by {@link NvrtcCompileTest} in a child JVM that first loads a stub
 * libcuda.so.1 (-Dlongrwkv.test.stubCuda=PATH): the bytedeco NVRTC bindings link the CUDA runtime's JNI library,
 * which needs the driver library to load, though NVRTC itself never calls the driver.
 */
public final class NvrtcCheck {
    private NvrtcCheck() { }

    public static void main(String[] args) {
        String stub = System.getProperty("longrwkv.test.stubCuda");
        if (stub != null) System.load(stub);
        List<String> archs = args.length > 0 ? List.of(args) : List.of("sm_80", "sm_90", "sm_100");
        System.out.println("NVRTC " + Nvrtc.version());
        List<String> failed = new ArrayList<>();
        for (String arch : archs) {
            for (String module : KernelSources.MODULES) {
                try {
                    byte[] cubin = Nvrtc.compile(module, arch);
                    System.out.println("ok " + module + ".cu " + arch + " " + Nvrtc.options(arch) + " -> " + cubin.length + " bytes of SASS");
                } catch (RuntimeException e) {
                    failed.add(module + ".cu " + arch);
                    System.out.println("FAILED " + module + ".cu " + arch + ": " + e.getMessage());
                }
            }
        }
        System.out.println(failed.isEmpty() ? "all kernels compile with NVRTC" : "NVRTC rejected: " + failed);
        System.exit(failed.isEmpty() ? 0 : 1);
    }
}
