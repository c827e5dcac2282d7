package ai.longrwkv.core.backend.cuda;

import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUmod_st;
import org.bytedeco.cuda.nvrtc._nvrtcProgram;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

import static org.bytedeco.cuda.global.cudart.*;
import static org.bytedeco.cuda.global.nvrtc.*;

/**
 * The kernels of the CUDA backend: the {@code .cu} sources in this package's resources, turned into device code for
 * the device's architecture the first time they are needed, in this order:
 * <ol>
 *   <li>a prebuilt fatbin from {@code scripts/compile-kernels.sh --out DIR} when {@code -Dlongrwkv.cuda.kernels=DIR}
 *       is set and the file's recorded source hash matches the source in the jar (so a stale build is never used);</li>
 *   <li>the on-disk cache ({@code -Dlongrwkv.cuda.cache}, default {@code $XDG_CACHE_HOME/longrwkv/cuda} or
 *       {@code ~/.cache/longrwkv/cuda}), keyed by the source hash, the flags, the arch and the NVRTC version;</li>
 *   <li>NVRTC, compiling to real SASS ({@code --gpu-architecture=sm_XY}): PTX from an NVRTC newer than the driver
 *       would be refused at load time, SASS is not.</li>
 * </ol>
 */
final class CudaKernels {
    /** The kernel sources, each one CUDA module. */
    static final List<String> SOURCES = List.of("wkv5", "elementwise", "norm", "loss");

    /**
     * Flags shared with scripts/compile-kernels.sh. --fmad=false keeps a*b+c as two roundings like the Java reference
     * (the kernels write fmaf where they want a fused multiply-add).
     */
    static final List<String> COMPILE_FLAGS = List.of("--fmad=false", "-std=c++17");

    private final CudaContext cx;
    private final Map<String, CUmod_st> modules = new HashMap<>();
    private final Map<String, Kernel> kernels = new HashMap<>();
    /** How each module was obtained (prebuilt, cache, nvrtc), for the backend's description. */
    final Map<String, String> origin = new HashMap<>();

    CudaKernels(CudaContext cx) {
        this.cx = cx;
        for (String s : SOURCES) load(s);   // all up front: a broken toolchain fails at start-up, not mid-training
    }

    static byte[] source(String name) {
        String res = name + ".cu";
        try (InputStream in = CudaKernels.class.getResourceAsStream(res)) {
            if (in == null) throw new IllegalStateException("kernel source " + res + " missing from the classpath");
            return in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("reading kernel source " + res + ": " + e.getMessage(), e);
        }
    }

    static String sha256(byte[] data) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static String nvrtcVersionString() {
        int[] major = new int[1], minor = new int[1];
        int st = nvrtcVersion(major, minor);
        return st == NVRTC_SUCCESS ? major[0] + "." + minor[0] : "unknown";
    }

    private void load(String name) {
        byte[] src = source(name);
        String hash = sha256(src);
        byte[] image = prebuilt(name, hash);
        String how = "prebuilt";
        if (image == null || !tryLoad(name, image)) {
            String key = name + "-" + cx.arch() + "-" + sha256((hash + COMPILE_FLAGS + nvrtcVersionString()).getBytes(StandardCharsets.UTF_8)).substring(0, 20);
            Path cached = cacheDir().resolve(key + ".cubin");
            image = null;
            how = "cache";
            if (Files.isRegularFile(cached)) {
                try {
                    image = Files.readAllBytes(cached);
                } catch (IOException e) {
                    image = null;
                }
            }
            if (image == null || !tryLoad(name, image)) {
                image = compile(name, src);
                how = "nvrtc";
                if (!tryLoad(name, image)) throw new IllegalStateException("cuModuleLoadData refused the NVRTC output for " + name + ".cu");
                writeCache(cached, image);
            }
        }
        origin.put(name, how);
    }

    private boolean tryLoad(String name, byte[] image) {
        cx.makeCurrent();
        CUmod_st mod = new CUmod_st();
        try (BytePointer img = new BytePointer(image)) {
            if (cuModuleLoadData(mod, img) != CUDA_SUCCESS) return false;
        }
        modules.put(name, mod);
        return true;
    }

    /** DIR/name.fatbin if DIR/name.sha256 records the hash of this source. */
    private static byte[] prebuilt(String name, String hash) {
        String dir = System.getProperty("longrwkv.cuda.kernels");
        if (dir == null || dir.isBlank()) return null;
        Path bin = Paths.get(dir, name + ".fatbin"), sum = Paths.get(dir, name + ".sha256");
        try {
            if (!Files.isRegularFile(bin) || !Files.isRegularFile(sum)) return null;
            if (!Files.readString(sum).trim().startsWith(hash)) return null;
            return Files.readAllBytes(bin);
        } catch (IOException e) {
            return null;
        }
    }

    static Path cacheDir() {
        String prop = System.getProperty("longrwkv.cuda.cache");
        if (prop != null && !prop.isBlank()) return Paths.get(prop);
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Paths.get(xdg) : Paths.get(System.getProperty("user.home"), ".cache");
        return base.resolve("longrwkv").resolve("cuda");
    }

    /** Best effort: a read-only home only costs a recompile next time. Written to a temporary file and renamed. */
    private static void writeCache(Path file, byte[] image) {
        try {
            Files.createDirectories(file.getParent());
            Path tmp = Files.createTempFile(file.getParent(), file.getFileName().toString(), ".tmp");
            Files.write(tmp, image);
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException | UnsupportedOperationException ignored) {
            // caching is an optimisation
        }
    }

    private byte[] compile(String name, byte[] src) {
        _nvrtcProgram prog = new _nvrtcProgram();
        try (BytePointer source = new BytePointer(new String(src, StandardCharsets.UTF_8), StandardCharsets.UTF_8);
             BytePointer progName = new BytePointer(name + ".cu")) {
            checkNvrtc(nvrtcCreateProgram(prog, source, progName, 0, (PointerPointer<?>) null, (PointerPointer<?>) null), "nvrtcCreateProgram " + name);
        }
        try {
            String[] opts = new String[COMPILE_FLAGS.size() + 1];
            opts[0] = "--gpu-architecture=" + cx.arch();
            for (int i = 0; i < COMPILE_FLAGS.size(); i++) opts[i + 1] = COMPILE_FLAGS.get(i);
            int st;
            try (PointerPointer<BytePointer> options = new PointerPointer<>(opts)) {
                st = nvrtcCompileProgram(prog, opts.length, options);
            }
            if (st != NVRTC_SUCCESS) {
                throw new IllegalStateException("NVRTC could not compile " + name + ".cu for " + cx.arch() + ": "
                        + nvrtcGetErrorString(st).getString() + "\n" + log(prog));
            }
            try (SizeTPointer size = new SizeTPointer(1)) {
                checkNvrtc(nvrtcGetCUBINSize(prog, size), "nvrtcGetCUBINSize");
                byte[] cubin = new byte[(int) size.get()];
                checkNvrtc(nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN");
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

    private static void checkNvrtc(int status, String what) {
        if (status != NVRTC_SUCCESS) throw new IllegalStateException(what + " failed: " + nvrtcGetErrorString(status).getString());
    }

    /** The kernel of that name in that source file (looked up once). */
    synchronized Kernel get(String module, String function) {
        return kernels.computeIfAbsent(function, f -> {
            CUmod_st mod = modules.get(module);
            if (mod == null) throw new IllegalStateException("kernel module " + module + " not loaded");
            CUfunc_st fn = new CUfunc_st();
            CudaContext.check(cuModuleGetFunction(fn, mod, f), "cuModuleGetFunction(" + f + ")");
            return new Kernel(cx, f, fn);
        });
    }

    /**
     * One kernel with its own parameter block: cuLaunchKernel wants, for argument i, the host address of a cell that
     * holds the value. The cells (8 bytes each) and the array of their addresses are allocated once per kernel; the
     * driver copies the values at launch, so the cells can be rewritten for the next launch straight away.
     */
    static final class Kernel {
        private static final int MAX_ARGS = 16;
        /** Set -Dlongrwkv.cuda.sync=true to wait after every launch (errors then name the kernel that failed). */
        private static final boolean SYNC = Boolean.getBoolean("longrwkv.cuda.sync");
        final String name;
        private final CudaContext cx;
        private final CUfunc_st fn;
        private final LongPointer cells = new LongPointer(MAX_ARGS);
        private final PointerPointer<?> params = new PointerPointer<>(MAX_ARGS);

        Kernel(CudaContext cx, String name, CUfunc_st fn) {
            this.cx = cx;
            this.name = name;
            this.fn = fn;
            for (int i = 0; i < MAX_ARGS; i++) params.put(i, new CudaContext.Address(cells.address() + 8L * i));
        }

        /**
         * Launches grid x block threads. Arguments: {@link CudaTensor} or {@link Long} (a pointer or a 64-bit integer,
         * 8 bytes), {@link Integer} (4 bytes), {@link Float} (4 bytes), null (a null pointer). The Java type must
         * match the kernel's parameter type: an int where the kernel takes long long would read garbage.
         */
        synchronized void launch(int grid, int block, int sharedBytes, Object... args) {
            if (grid == 0) return;
            if (args.length > MAX_ARGS) throw new IllegalArgumentException(name + ": too many arguments");
            for (int i = 0; i < args.length; i++) {
                Object a = args[i];
                long cell;
                if (a == null) cell = 0L;
                else if (a instanceof CudaTensor t) cell = t.ptr();
                else if (a instanceof Long l) cell = l;
                else if (a instanceof Integer n) cell = n & 0xffffffffL;                        // little-endian: low 4 bytes
                else if (a instanceof Float f) cell = Float.floatToRawIntBits(f) & 0xffffffffL;
                else throw new IllegalArgumentException(name + ": unsupported argument type " + a.getClass());
                cells.put(i, cell);
            }
            cx.makeCurrent();
            CudaContext.check(cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, sharedBytes, null, params, null), "cuLaunchKernel(" + name + ")");
            if (SYNC) cx.synchronize(name);
        }
    }
}
