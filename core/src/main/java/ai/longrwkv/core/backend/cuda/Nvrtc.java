package ai.longrwkv.core.backend.cuda;

import org.bytedeco.cuda.nvrtc._nvrtcProgram;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.bytedeco.cuda.global.nvrtc.*;

/**
 * NVRTC as the CUDA backend uses it at run time: the module's source with its headers given by name, the options
 * {@link #options} builds, real SASS for one architecture. CI compiles every module through this class (NvrtcCheck)
 * for several architectures, without a GPU, so a kernel NVRTC rejects fails CI and not a user's first run.
 */
final class Nvrtc {
    private Nvrtc() { }

    /** "13.1", or "unavailable" when libnvrtc.so.13 cannot be loaded (prebuilt kernels need no NVRTC). */
    static String version() {
        try {
            int[] major = new int[1], minor = new int[1];
            int st = nvrtcVersion(major, minor);
            return st == NVRTC_SUCCESS ? major[0] + "." + minor[0] : "unknown";
        } catch (LinkageError e) {
            return "unavailable";
        }
    }

    /** The options of a compilation for {@code arch} ("sm_90"): the architecture, then {@link KernelSources#NVRTC_FLAGS}. */
    static List<String> options(String arch) {
        List<String> opts = new ArrayList<>();
        opts.add("--gpu-architecture=" + arch);
        opts.addAll(KernelSources.NVRTC_FLAGS);
        return opts;
    }

    /** The module compiled to a cubin for {@code arch}; throws with NVRTC's log when it does not compile. */
    static byte[] compile(String module, String arch) {
        byte[] src = KernelSources.source(module);
        Map<String, byte[]> headers = KernelSources.headers();
        List<String> names = new ArrayList<>(headers.keySet());
        _nvrtcProgram prog = new _nvrtcProgram();
        String[] headerSources = new String[names.size()];
        for (int i = 0; i < names.size(); i++) headerSources[i] = new String(headers.get(names.get(i)), StandardCharsets.UTF_8);
        try (BytePointer source = new BytePointer(new String(src, StandardCharsets.UTF_8), StandardCharsets.UTF_8);
             BytePointer progName = new BytePointer(module + ".cu");
             PointerPointer<BytePointer> hs = new PointerPointer<>(headerSources);
             PointerPointer<BytePointer> hn = new PointerPointer<>(names.toArray(new String[0]))) {
            check(nvrtcCreateProgram(prog, source, progName, names.size(), hs, hn), "nvrtcCreateProgram " + module);
        }
        try {
            List<String> opts = options(arch);
            int st;
            try (PointerPointer<BytePointer> options = new PointerPointer<>(opts.toArray(new String[0]))) {
                st = nvrtcCompileProgram(prog, opts.size(), options);
            }
            if (st != NVRTC_SUCCESS) {
                throw new IllegalStateException("NVRTC could not compile " + module + ".cu for " + arch + " with " + opts + ": "
                        + nvrtcGetErrorString(st).getString() + "\n" + log(prog));
            }
            try (SizeTPointer size = new SizeTPointer(1)) {
                check(nvrtcGetCUBINSize(prog, size), "nvrtcGetCUBINSize");
                byte[] cubin = new byte[(int) size.get()];
                check(nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN");
                return cubin;
            }
        } finally {
            nvrtcDestroyProgram(prog);
        }
    }

    private static String log(_nvrtcProgram prog) {
        try (SizeTPointer size = new SizeTPointer(1)) {
            if (nvrtcGetProgramLogSize(prog, size) != NVRTC_SUCCESS || size.get() <= 1) return "";
            byte[] text = new byte[(int) size.get()];
            nvrtcGetProgramLog(prog, text);
            return new String(text, 0, text.length - 1, StandardCharsets.UTF_8);
        }
    }

    private static void check(int status, String what) {
        if (status != NVRTC_SUCCESS) throw new IllegalStateException(what + " failed: " + nvrtcGetErrorString(status).getString());
    }
}
