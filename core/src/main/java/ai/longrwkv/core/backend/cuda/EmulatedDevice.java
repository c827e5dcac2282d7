package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.tensor.DType;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.openblas.global.openblas;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A CUDA device emulated on the CPU, for developing and testing the GPU path without a GPU. The project's real
 * {@code .cu} sources are compiled unchanged with the machine's g++ through {@code emu/cuda_emu.h} (one emulated
 * thread per CUDA thread, barriers and warp collectives that check who arrives, see that header), loaded through a
 * small JNI library, and launched with the same argument arrays the driver gets. GEMM has cuBLAS's column-major
 * semantics, argument checks included, computed by OpenBLAS (bf16 operands of {@link #gemmEx} widened to fp32 first).
 *
 * <p>Memory is a checked imitation of device memory: each allocation is poisoned on allocation (every byte 0xFF, so
 * floats read before they are written are NaN) and surrounded by guard zones; the guards of every live allocation
 * are verified after every launch and on free, and every copy, memset and GEMM operand is checked to lie inside one
 * allocation. {@code -Dlongrwkv.emu.memory=BYTES} sets the device size (default 16 GiB), so out-of-memory paths can
 * be tested; GEMM needs {@link #GEMM_WORKSPACE} free bytes, like cuBLAS's workspace.
 *
 * <p>{@code -Dlongrwkv.emu.mode=fibers|threads} (default fibers: fast; threads: one pthread per CUDA thread).
 * Built libraries are cached under the kernel cache ({@link KernelSources#cacheDir()}), keyed by every source's hash.
 *
 * <p>Several devices may live in one process, each used from its own thread (one per emulated rank): launches of
 * kernels of one module are serialised across all devices of the process (see {@link #launchLock}); everything else
 * is per device. NCCL's collectives between such devices, and devices of other processes, are emulated by
 * {@link EmulatedNccl} (see {@link #ncclCommInitRank}).
 */
final class EmulatedDevice implements Device {
    static final int GUARD = 256;
    static final long GEMM_WORKSPACE = 1 << 20;
    private static final byte GUARD_BYTE = (byte) 0xA5;
    private static final Pattern KERNEL = Pattern.compile("extern \"C\" __global__ void (?:__launch_bounds__\\(([^)]*)\\) )?(\\w+)\\s*\\(");
    private static final List<String> EMU_FILES = List.of("cuda_emu.h", "cuda_emu_runtime.h", "emu_jni.cpp");
    private static volatile boolean jniLoaded;

    private record Alloc(long base, long bytes, Pointer raw) { }

    private final boolean threadsMode;
    private final long memoryLimit;
    private final Path buildDir;
    private final TreeMap<Long, Alloc> allocs = new TreeMap<>();
    private final Map<String, Long> modules = new HashMap<>();
    private final Map<String, String> origin = new TreeMap<>();
    private long liveBytes;
    private DataOutputStream recording;
    private final Map<Long, Integer> recordedIds = new HashMap<>();
    private boolean closed;

    EmulatedDevice() {
        this(threadsModeProperty(), Long.getLong("longrwkv.emu.memory", 16L << 30));
    }

    private static boolean threadsModeProperty() {
        String mode = System.getProperty("longrwkv.emu.mode", "fibers");
        if (!mode.equals("fibers") && !mode.equals("threads")) {
            throw new IllegalArgumentException("-Dlongrwkv.emu.mode must be fibers or threads, not '" + mode + "'");
        }
        return mode.equals("threads");
    }

    EmulatedDevice(boolean threadsMode, long memoryLimit) {
        this.threadsMode = threadsMode;
        this.memoryLimit = memoryLimit;
        buildDir = KernelSources.cacheDir().resolve("emu-" + buildHash().substring(0, 16));
        loadJni(buildDir);
    }

    // ---------------------------------------------------------------- building
    /** Hash of everything a build depends on: kernel sources, headers, the emulation files, the compiler. */
    private static String buildHash() {
        StringBuilder all = new StringBuilder();
        for (String m : KernelSources.MODULES) all.append(KernelSources.hash(m));
        for (String f : EMU_FILES) all.append(KernelSources.sha256(KernelSources.read("emu/" + f)));
        all.append(compilerVersion());
        return KernelSources.sha256(all.toString().getBytes(StandardCharsets.UTF_8));
    }

    static String compiler() { return System.getProperty("longrwkv.emu.cxx", "g++"); }

    private static volatile String compilerVersion;

    /** The compiler's first --version line, asked once per process (it is part of the build hash and the description). */
    private static String compilerVersion() {
        String v = compilerVersion;
        if (v != null) return v;
        try {
            String out = run(List.of(compiler(), "--version"), null);
            v = out.lines().findFirst().orElse("");
        } catch (IllegalStateException e) {
            throw new IllegalStateException("the emulated CUDA device needs a C++ compiler: " + e.getMessage());
        }
        compilerVersion = v;
        return v;
    }

    /** Runs a command, returns its output; throws with the output when it fails. */
    static String run(List<String> cmd, Path dir) {
        try {
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
            if (dir != null) pb.directory(dir.toFile());
            Process p = pb.start();
            byte[] out;
            try (InputStream in = p.getInputStream()) {
                out = in.readAllBytes();
            }
            if (!p.waitFor(600, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IllegalStateException(String.join(" ", cmd) + " did not finish in 600 s");
            }
            String text = new String(out, StandardCharsets.UTF_8);
            if (p.exitValue() != 0) {
                String head = text.lines().limit(40).reduce((a, b) -> a + "\n" + b).orElse("");
                throw new IllegalStateException(cmd.get(0) + " failed (exit " + p.exitValue() + "): " + head);
            }
            return text;
        } catch (IOException e) {
            throw new IllegalStateException("cannot run " + cmd.get(0) + ": " + e.getMessage());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while running " + cmd.get(0));
        }
    }

    /** Writes the kernel sources, headers and emulation files into dir (what g++ and nvcc compile). */
    static void writeSources(Path dir) throws IOException {
        Files.createDirectories(dir);
        for (String m : KernelSources.MODULES) writeIfChanged(dir.resolve(m + ".cu"), KernelSources.source(m));
        for (Map.Entry<String, byte[]> h : KernelSources.headers().entrySet()) writeIfChanged(dir.resolve(h.getKey()), h.getValue());
        for (String f : EMU_FILES) writeIfChanged(dir.resolve(f), KernelSources.read("emu/" + f));
    }

    private static void writeIfChanged(Path file, byte[] data) throws IOException {
        if (Files.isRegularFile(file) && java.util.Arrays.equals(Files.readAllBytes(file), data)) return;
        Path tmp = Files.createTempFile(file.getParent(), file.getFileName().toString(), ".tmp");
        Files.write(tmp, data);
        Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }

    /** The kernels of a module and their __launch_bounds__ expressions ("0" for none), from the preprocessed source. */
    static Map<String, String> kernels(Path dir, String module) {
        String pre = run(List.of(compiler(), "-E", "-P", "-x", "c++", "-std=c++17", "-I", dir.toString(),
                dir.resolve(module + ".cu").toString()), dir);
        Map<String, String> out = new java.util.LinkedHashMap<>();
        Matcher m = KERNEL.matcher(pre);
        while (m.find()) out.put(m.group(2), m.group(1) == null ? "0" : m.group(1));
        return out;
    }

    /**
     * Builds the emulated library of one module into dir/lib{module}{suffix}.so: the source, then a table of its
     * kernels. extraFlags: e.g. sanitizer flags for the replay builds.
     */
    static Path buildModule(Path dir, String module, String suffix, List<String> extraFlags) throws IOException {
        writeSources(dir);
        Path lib = dir.resolve("lib" + module + suffix + ".so");
        if (Files.isRegularFile(lib)) return lib;
        StringBuilder gen = new StringBuilder("#include \"" + module + ".cu\"\nEMU_MODULE_BEGIN\n");
        for (Map.Entry<String, String> k : kernels(dir, module).entrySet()) {
            gen.append("EMU_KERNEL(").append(k.getKey()).append(", (").append(k.getValue()).append("))\n");
        }
        gen.append("EMU_MODULE_END\n");
        Path cpp = dir.resolve(module + suffix + ".emu.cpp");
        writeIfChanged(cpp, gen.toString().getBytes(StandardCharsets.UTF_8));
        Path tmp = Files.createTempFile(dir, "lib" + module, ".so.tmp");
        List<String> cmd = new ArrayList<>(List.of(compiler(), "-std=c++17", "-O2", "-g", "-fPIC", "-shared", "-pthread",
                // the host match for NVRTC's --fmad=false: no contraction of a*b+c (the kernels write fmaf explicitly)
                "-ffp-contract=off", "-fvisibility=hidden", "-Wno-unused-variable",
                "-include", dir.resolve("cuda_emu.h").toString(), "-I", dir.toString()));
        cmd.addAll(extraFlags);
        cmd.addAll(List.of("-o", tmp.toString(), cpp.toString()));
        run(cmd, dir);
        Files.move(tmp, lib, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        return lib;
    }

    private static synchronized void loadJni(Path dir) {
        if (jniLoaded) return;
        try {
            writeSources(dir);
            Path lib = dir.resolve("libemu_jni.so");
            if (!Files.isRegularFile(lib)) {
                Path javaHome = Path.of(System.getProperty("java.home"));
                Path include = javaHome.resolve("include");
                if (!Files.isRegularFile(include.resolve("jni.h"))) {
                    throw new IllegalStateException("the emulated CUDA device needs a JDK: no jni.h under " + include);
                }
                Path tmp = Files.createTempFile(dir, "libemu_jni", ".so.tmp");
                run(List.of(compiler(), "-std=c++17", "-O2", "-fPIC", "-shared", "-I", include.toString(),
                        "-I", include.resolve("linux").toString(), "-o", tmp.toString(), dir.resolve("emu_jni.cpp").toString(), "-ldl"), dir);
                Files.move(tmp, lib, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            }
            System.load(lib.toString());
            jniLoaded = true;
        } catch (IOException e) {
            throw new IllegalStateException("building the emulated CUDA device in " + dir + ": " + e.getMessage());
        }
    }

    Path buildDir() { return buildDir; }

    boolean threadsMode() { return threadsMode; }

    // ---------------------------------------------------------------- description
    @Override
    public String description() {
        return "emulated CUDA device (" + (threadsMode ? "threads" : "fibers") + ", " + (memoryLimit >> 20) + " MiB, kernels built with "
                + compilerVersion() + ")";
    }

    @Override public long totalMemory() { return memoryLimit; }

    @Override public long allocationGranularity() { return 2; }

    // ---------------------------------------------------------------- memory
    @Override
    public synchronized long malloc(long bytes) {
        checkOpen();
        if (bytes <= 0) throw new IllegalArgumentException("cuMemAlloc of " + bytes + " bytes (CUDA_ERROR_INVALID_VALUE)");
        if (liveBytes + bytes > memoryLimit) return 0;
        Pointer raw = Pointer.malloc(bytes + 2L * GUARD);
        if (raw == null || raw.isNull()) return 0;
        Pointer.memset(raw, GUARD_BYTE, GUARD);
        long base = raw.address() + GUARD;
        Pointer.memset(at(base), 0xFF, bytes);                          // poison: NaN floats, -1 ints
        Pointer.memset(at(base + bytes), GUARD_BYTE, GUARD);
        allocs.put(base, new Alloc(base, bytes, raw));
        liveBytes += bytes;
        return base;
    }

    private static Pointer at(long address) {
        return new Kernel.Address(address);
    }

    @Override
    public synchronized void free(long ptr) {
        checkOpen();
        Alloc a = allocs.get(ptr);
        if (a == null) throw new IllegalStateException("cuMemFree of " + hex(ptr) + ", which is not an allocation (CUDA_ERROR_INVALID_VALUE)");
        checkGuards(a, "cuMemFree");
        allocs.remove(ptr);
        liveBytes -= a.bytes;
        Pointer.free(a.raw);
    }

    private static String hex(long p) { return "0x" + Long.toHexString(p); }

    /** The allocation that holds [ptr, ptr + bytes), or an error naming the operation. */
    private Alloc inside(long ptr, long bytes, String op) {
        Map.Entry<Long, Alloc> e = allocs.floorEntry(ptr);
        if (e == null || ptr + bytes > e.getValue().base + e.getValue().bytes || bytes < 0) {
            String near = e == null ? "no allocation below it"
                    : "nearest allocation " + hex(e.getKey()) + " of " + e.getValue().bytes + " bytes";
            throw new IllegalStateException(op + ": device range " + hex(ptr) + " + " + bytes + " bytes is outside every allocation ("
                    + near + "): an out-of-bounds access (CUDA_ERROR_ILLEGAL_ADDRESS on a GPU)");
        }
        return e.getValue();
    }

    private void checkGuards(Alloc a, String after) {
        int[] bad = {firstBad(a.base - GUARD), firstBad(a.base + a.bytes)};
        if (bad[0] >= 0 || bad[1] >= 0) {
            String which = bad[0] >= 0 ? (GUARD - bad[0]) + " bytes before" : (bad[1] + 1) + " bytes past the end of";
            throw new IllegalStateException("emulated device: memory " + which + " the allocation " + hex(a.base) + " (" + a.bytes
                    + " bytes) was overwritten, found after " + after + ": an out-of-bounds write");
        }
    }

    /** Index of the first byte in [addr, addr + GUARD) that is not the guard pattern, or -1. */
    private static int firstBad(long addr) {
        ByteBuffer b = new BytePointer(at(addr)).capacity(GUARD).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        long pattern = 0xA5A5A5A5A5A5A5A5L;
        for (int i = 0; i < GUARD; i += 8) {
            if (b.getLong(i) != pattern) {
                for (int j = i; j < i + 8; j++) if (b.get(j) != GUARD_BYTE) return j;
            }
        }
        return -1;
    }

    private void checkAllGuards(String after) {
        for (Alloc a : allocs.values()) checkGuards(a, after);
    }

    @Override
    public synchronized void copyHtoD(long dst, Pointer src, long bytes) {
        checkOpen();
        inside(dst, bytes, "cuMemcpyHtoD");
        Pointer.memcpy(at(dst), src, bytes);
    }

    @Override
    public synchronized void copyDtoH(Pointer dst, long src, long bytes) {
        checkOpen();
        inside(src, bytes, "cuMemcpyDtoH");
        Pointer.memcpy(dst, at(src), bytes);
    }

    @Override
    public synchronized void copyDtoD(long dst, long src, long bytes) {
        checkOpen();
        inside(src, bytes, "cuMemcpyDtoD source");
        inside(dst, bytes, "cuMemcpyDtoD destination");
        Pointer.memcpy(at(dst), at(src), bytes);
    }

    @Override
    public synchronized void memsetD32(long dst, int value, long count) {
        checkOpen();
        inside(dst, count * 4, "cuMemsetD32");
        if (value == 0) {
            Pointer.memset(at(dst), 0, count * 4);
            return;
        }
        ByteBuffer b = new BytePointer(at(dst)).capacity(count * 4).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        for (long i = 0; i < count; i++) b.putInt((int) (i * 4), value);
    }

    @Override
    public synchronized void memsetD16(long dst, short value, long count) {
        checkOpen();
        if (dst % 2 != 0) throw new IllegalStateException("cuMemsetD16 at " + hex(dst) + ", not 2-byte aligned (CUDA_ERROR_INVALID_VALUE)");
        inside(dst, count * 2, "cuMemsetD16");
        java.nio.ShortBuffer b = new BytePointer(at(dst)).capacity(count * 2).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asShortBuffer();
        for (int i = 0, n = Math.toIntExact(count); i < n; i++) b.put(i, value);
    }

    @Override
    public synchronized void synchronize(String after) {
        checkOpen();   // launches run to completion: nothing is ever queued
    }

    /** Device bytes in live allocations. */
    synchronized long liveBytes() { return liveBytes; }

    // ---------------------------------------------------------------- kernels
    @Override
    public synchronized DeviceFunction function(String module, String name) {
        checkOpen();
        Long handle = modules.get(module);
        if (handle == null) {
            if (!KernelSources.MODULES.contains(module)) throw new IllegalStateException("no kernel module " + module);
            try {
                Path lib = buildModule(buildDir, module, "", List.of());
                String[] err = new String[1];
                long h = EmulatorNative.open(lib.toString(), err);
                if (h == 0) throw new IllegalStateException("loading the emulated module " + lib + ": " + err[0]);
                handle = h;
                modules.put(module, handle);
                origin.put(module, "g++");
            } catch (IOException e) {
                throw new IllegalStateException("building the emulated module " + module + ": " + e.getMessage());
            }
        }
        return kernelOf(handle, module, name);
    }

    /**
     * A kernel of a .cu file outside the backend's sources (the emulator's own tests): built in its own directory
     * with the same flags and emulation header.
     */
    synchronized DeviceFunction externalFunction(Path cuFile, String name) throws IOException {
        String module = cuFile.getFileName().toString().replaceFirst("\\.cu$", "");
        Long handle = modules.get("external:" + cuFile);
        if (handle == null) {
            Path dir = buildDir.resolve("external-" + KernelSources.sha256(Files.readAllBytes(cuFile)).substring(0, 16));
            Files.createDirectories(dir);
            writeIfChanged(dir.resolve(module + ".cu"), Files.readAllBytes(cuFile));
            Path lib = buildModule(dir, module, "", List.of());
            String[] err = new String[1];
            long h = EmulatorNative.open(lib.toString(), err);
            if (h == 0) throw new IllegalStateException("loading " + lib + ": " + err[0]);
            handle = h;
            modules.put("external:" + cuFile, handle);
        }
        return kernelOf(handle, module, name);
    }

    /** The kernel's signature as the module's table records it; no __launch_bounds__ means CUDA's limit, 1024. */
    private static DeviceFunction kernelOf(long handle, String module, String name) {
        int[] info = EmulatorNative.kernel(handle, name);
        if (info == null) throw new IllegalStateException("cuModuleGetFunction(" + name + ") failed: CUDA_ERROR_NOT_FOUND (no such kernel in " + module + ".cu)");
        return new DeviceFunction(module, name, handle, java.util.Arrays.copyOfRange(info, 2, 2 + info[1]), info[0] > 0 ? info[0] : 1024);
    }

    @Override
    public synchronized void launch(DeviceFunction f, int grid, int block, int sharedBytes, Pointer params) {
        checkOpen();
        if (sharedBytes != 0) throw new IllegalStateException(f.name() + ": dynamic shared memory is not emulated");
        if (grid <= 0 || block <= 0 || block > 1024 || (block > f.maxThreadsPerBlock())) {
            throw new IllegalStateException("cuLaunchKernel(" + f.name() + ") failed: CUDA_ERROR_INVALID_VALUE (grid " + grid
                    + ", block " + block + ", the kernel allows " + f.maxThreadsPerBlock() + ")");
        }
        if (recording != null) record(f, grid, block, params);
        String err;
        synchronized (launchLock((Long) f.handle())) {
            err = EmulatorNative.launch((Long) f.handle(), f.name(), grid, 1, 1, block, 1, 1, params.address(), threadsMode);
        }
        if (err != null) throw new IllegalStateException("emulated kernel failed: " + err);
        checkAllGuards("kernel " + f.name());
    }

    /**
     * One lock per module library, for the whole process. A module's launch configuration (gridDim, blockDim, the
     * kernel and its arguments) and its kernels' {@code __shared__} arrays are statics of its library, and dlopen of
     * one path gives every device of the process the same library: two devices launching kernels of one module at
     * the same time (ranks on their own threads) would read each other's gridDim and scribble on each other's shared
     * memory. Kernels of different modules still run concurrently. (Making those statics thread_local is no fix: in
     * threads mode every CUDA thread of a block is a pthread of its own, and they must share them.)
     */
    private static final Map<Long, Object> LAUNCH_LOCKS = new java.util.concurrent.ConcurrentHashMap<>();

    private static Object launchLock(long module) {
        return LAUNCH_LOCKS.computeIfAbsent(module, k -> new Object());
    }

    // ---------------------------------------------------------------- GEMM
    @Override
    public synchronized boolean sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda,
                                      long b, int ldb, float beta, long c, int ldc) {
        return gemm("cublasSgemm", transA, transB, m, n, k, alpha, a, DType.F32, lda, b, DType.F32, ldb, beta, c, ldc);
    }

    /**
     * cublasGemmEx's semantics with CUBLAS_COMPUTE_32F: A and B of one type (else CUBLAS_STATUS_NOT_SUPPORTED, as
     * cuBLAS answers), bf16 widened to fp32 (exact) into host buffers, then the fp32 GEMM by OpenBLAS. A product of
     * two bf16 values is exact in fp32 (8 + 8 significant bits), so this differs from the tensor cores' result only by
     * the order of the fp32 sums. The same checks as {@link #sgemm}, with each operand's extent in its own element size.
     */
    @Override
    public synchronized boolean gemmEx(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, DType aType,
                                       int lda, long b, DType bType, int ldb, float beta, long c, int ldc) {
        if (aType != bType) {
            throw new IllegalStateException("cublasGemmEx failed: CUBLAS_STATUS_NOT_SUPPORTED (A " + aType.label() + ", B "
                    + bType.label() + ": cuBLAS takes A and B of one type)");
        }
        return gemm("cublasGemmEx", transA, transB, m, n, k, alpha, a, aType, lda, b, bType, ldb, beta, c, ldc);
    }

    private boolean gemm(String call, boolean transA, boolean transB, int m, int n, int k, float alpha, long a, DType aType,
                         int lda, long b, DType bType, int ldb, float beta, long c, int ldc) {
        checkOpen();
        int aRows = transA ? k : m, aCols = transA ? m : k, bRows = transB ? n : k, bCols = transB ? k : n;
        // cuBLAS's argument checks (CUBLAS_STATUS_INVALID_VALUE)
        if (m < 0 || n < 0 || k < 0 || lda < Math.max(1, aRows) || ldb < Math.max(1, bRows) || ldc < Math.max(1, m)) {
            throw new IllegalStateException(call + " failed: CUBLAS_STATUS_INVALID_VALUE (m=" + m + " n=" + n + " k=" + k
                    + " lda=" + lda + " ldb=" + ldb + " ldc=" + ldc + " transA=" + transA + " transB=" + transB + ")");
        }
        if (m == 0 || n == 0) return true;
        if (liveBytes + GEMM_WORKSPACE > memoryLimit) return false;   // like cuBLAS failing to get its workspace
        long aElems = (long) lda * (aCols - 1) + aRows, bElems = (long) ldb * (bCols - 1) + bRows;
        if (k > 0) {
            inside(a, aType.bytes() * aElems, call + " A");
            inside(b, bType.bytes() * bElems, call + " B");
        }
        inside(c, 4L * ((long) ldc * (n - 1) + m), call + " C");
        if (k == 0) {
            // cuBLAS: C = beta C (beta 0 writes zeros, whatever C held)
            for (int j = 0; j < n; j++) {
                FloatPointer col = new FloatPointer(at(c + 4L * ldc * j)).capacity(m);
                for (int i = 0; i < m; i++) col.put(i, beta == 0f ? 0f : beta * col.get(i));
            }
            return true;
        }
        FloatPointer pa = aType == DType.F32 ? new FloatPointer(at(a)) : widened(a, aElems);
        FloatPointer pb = bType == DType.F32 ? new FloatPointer(at(b)) : widened(b, bElems);
        try {
            openblas.cblas_sgemm(openblas.CblasColMajor, transA ? openblas.CblasTrans : openblas.CblasNoTrans,
                    transB ? openblas.CblasTrans : openblas.CblasNoTrans, m, n, k, alpha, pa, lda, pb, ldb, beta,
                    new FloatPointer(at(c)), ldc);
        } finally {
            if (aType != DType.F32) pa.close();
            if (bType != DType.F32) pb.close();
        }
        return true;
    }

    /** A host fp32 copy of {@code count} bf16 values at device address {@code src} (exact: a bf16 is a float's top half). */
    private static FloatPointer widened(long src, long count) {
        FloatPointer out = new FloatPointer(count);
        java.nio.ShortBuffer bits = new BytePointer(at(src)).capacity(2 * count).asByteBuffer()
                .order(ByteOrder.LITTLE_ENDIAN).asShortBuffer();
        java.nio.FloatBuffer dst = out.asBuffer();
        for (int i = 0, n = Math.toIntExact(count); i < n; i++) dst.put(i, Float.intBitsToFloat(bits.get(i) << 16));
        return out;
    }

    // ---------------------------------------------------------------- NCCL
    /** An id of the emulation's NCCL ({@link EmulatedNccl}): for ranks on emulated devices of this process. */
    @Override
    public byte[] ncclUniqueId() {
        checkOpen();
        return EmulatedNccl.newId();
    }

    @Override
    public NcclComm ncclCommInitRank(byte[] id, int rank, int nranks, long timeoutMillis) {
        checkOpen();
        return new EmulatedComm(EmulatedNccl.join(id, rank, nranks, timeoutMillis));
    }

    /**
     * One rank's emulated communicator: the send buffer is copied out of this device (checked to lie inside one
     * allocation, like every copy), the rendezvous of {@link EmulatedNccl} forms the result, and the result is copied
     * into the recv buffer, all on the calling thread. The call returns when the result is in place: the emulated
     * device never queues work.
     */
    private final class EmulatedComm implements NcclComm {
        private final EmulatedNccl.Member member;

        EmulatedComm(EmulatedNccl.Member member) { this.member = member; }

        @Override public int rank() { return member.rank(); }
        @Override public int size() { return member.size(); }

        @Override
        public void allReduce(long send, long recv, long count, NcclType type) {
            run(new EmulatedNccl.Spec("allReduce", type, count, -1), send, recv);
        }

        @Override
        public void reduce(long send, long recv, long count, NcclType type, int root) {
            run(new EmulatedNccl.Spec("reduce", type, count, root), send, recv);
        }

        @Override
        public void broadcast(long send, long recv, long count, NcclType type, int root) {
            run(new EmulatedNccl.Spec("broadcast", type, count, root), send, recv);
        }

        @Override
        public void allGather(long send, long recv, long sendCount, NcclType type) {
            run(new EmulatedNccl.Spec("allGather", type, sendCount, -1), send, recv);
        }

        @Override
        public void reduceScatter(long send, long recv, long recvCount, NcclType type) {
            run(new EmulatedNccl.Spec("reduceScatter", type, recvCount, -1), send, recv);
        }

        /** Checks the call and copies this rank's contribution out of device memory. */
        private byte[] sendBytes(EmulatedNccl.Spec spec, long send, long recv) {
            int rank = member.rank(), size = member.size();
            String what = "rank " + rank + ": " + spec.op() + " #" + member.nextSeq();
            if (spec.count() < 0) throw new IllegalArgumentException(what + ": negative count " + spec.count());
            if (spec.root() >= size || (spec.root() < 0 && (spec.op().equals("reduce") || spec.op().equals("broadcast")))) {
                throw new IllegalArgumentException(what + ": root " + spec.root() + " is outside 0.." + (size - 1) + " (ncclInvalidArgument)");
            }
            if (spec.sums() && spec.type() == NcclType.BF16) {
                throw new IllegalArgumentException(what + ": the emulated collectives sum fp32 and fp64 only, not bf16");
            }
            long sendBytes = spec.sendBytes(rank, size), recvBytes = spec.recvBytes(rank, size);
            byte[] in = new byte[Math.toIntExact(sendBytes)];
            if (sendBytes > 0) {
                try (BytePointer h = new BytePointer(sendBytes)) {
                    copyDtoH(h, send, sendBytes);
                    h.get(in);
                } catch (IllegalStateException e) {
                    throw new IllegalArgumentException(what + ": the send buffer: " + e.getMessage());
                }
            }
            if (recvBytes > 0) {
                synchronized (EmulatedDevice.this) {   // a bad recv buffer fails before the rendezvous, not after it
                    try {
                        inside(recv, recvBytes, "the recv buffer");
                    } catch (IllegalStateException e) {
                        throw new IllegalArgumentException(what + ": " + e.getMessage());
                    }
                }
            }
            return in;
        }

        private void run(EmulatedNccl.Spec spec, long send, long recv) {
            byte[] in;
            try {
                in = sendBytes(spec, send, recv);
            } catch (IllegalArgumentException e) {
                member.abort(e.getMessage());   // the other ranks fail now instead of at their timeout
                throw e;
            }
            long recvBytes = spec.recvBytes(member.rank(), member.size());
            byte[] out = member.collective(spec, in);
            if (recvBytes > 0) {
                try (BytePointer h = new BytePointer(out)) {
                    copyHtoD(recv, h, recvBytes);
                }
            }
        }

        @Override public String asyncError() { return member.brokenReason(); }

        @Override public void abort(String reason) { member.abort(reason); member.close(); }

        @Override public void close() { member.close(); }
    }

    // ---------------------------------------------------------------- launch recording (for the sanitizer replays)
    /**
     * Records every following launch to {@code out} (closed by {@link #stopRecording}): for each launch, the memory
     * of every allocation an argument points into, then the kernel, its configuration and its arguments, with
     * pointers as (allocation, offset). The replay tool re-runs them in a sanitizer build; see emu_replay.cpp.
     */
    synchronized void startRecording(OutputStream out) {
        recording = new DataOutputStream(out);
        recordedIds.clear();
    }

    synchronized void stopRecording() throws IOException {
        if (recording != null) {
            recording.writeInt(Integer.reverseBytes(0x444e4521));   // "!END"
            recording.flush();
            recording.close();
            recording = null;
        }
    }

    private void record(DeviceFunction f, int grid, int block, Pointer params) {
        try {
            int nargs = f.paramSizes().length;   // always known on the emulator
            LongPointer cellAddrs = new LongPointer(at(params.address())).capacity(nargs);
            long[] values = new long[nargs];
            int[] allocIds = new int[nargs];
            long[] offsets = new long[nargs];
            ByteArrayOutputStream lnch = new ByteArrayOutputStream();
            for (int i = 0; i < nargs; i++) {
                long cell = cellAddrs.get(i);
                int size = f.paramSizes()[i];
                values[i] = size == 8 ? new LongPointer(at(cell)).get(0) : new org.bytedeco.javacpp.IntPointer(at(cell)).get(0) & 0xffffffffL;
                allocIds[i] = -1;
                if (size == 8) {
                    Map.Entry<Long, Alloc> e = allocs.floorEntry(values[i]);
                    if (e != null && values[i] < e.getValue().base + e.getValue().bytes) {
                        Alloc a = e.getValue();
                        int id = recordedIds.computeIfAbsent(a.base, k -> recordedIds.size());
                        allocIds[i] = id;
                        offsets[i] = values[i] - a.base;
                        writeAlloc(id, a);
                    }
                }
            }
            DataOutputStream d = recording;
            d.writeInt(Integer.reverseBytes(0x484e4c4c));   // "LLNH"
            writeString(d, f.module());
            writeString(d, f.name());
            d.writeInt(Integer.reverseBytes(grid));
            d.writeInt(Integer.reverseBytes(block));
            d.writeInt(Integer.reverseBytes(nargs));
            for (int i = 0; i < nargs; i++) {
                d.writeInt(Integer.reverseBytes(f.paramSizes()[i]));
                d.writeLong(Long.reverseBytes(values[i]));
                d.writeInt(Integer.reverseBytes(allocIds[i]));
                d.writeLong(Long.reverseBytes(offsets[i]));
            }
        } catch (IOException e) {
            throw new IllegalStateException("recording launches: " + e.getMessage());
        }
    }

    private void writeAlloc(int id, Alloc a) throws IOException {
        DataOutputStream d = recording;
        d.writeInt(Integer.reverseBytes(0x434f4c41));   // "ALOC"
        d.writeInt(Integer.reverseBytes(id));
        d.writeLong(Long.reverseBytes(a.bytes));
        byte[] data = new byte[(int) Math.min(a.bytes, Integer.MAX_VALUE - 8)];
        new BytePointer(at(a.base)).capacity(a.bytes).get(data);
        d.write(data);
    }

    private static void writeString(DataOutputStream d, String s) throws IOException {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        d.writeInt(Integer.reverseBytes(b.length));
        d.write(b);
    }

    // ---------------------------------------------------------------- life cycle
    @Override public synchronized Map<String, String> moduleOrigins() { return new TreeMap<>(origin); }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("emulated CUDA device used after close()");
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        for (Alloc a : allocs.values()) Pointer.free(a.raw);
        allocs.clear();
        liveBytes = 0;
        closed = true;
        // module libraries stay loaded: JNI and dlopen handles are per process, and another device may use them
    }
}
