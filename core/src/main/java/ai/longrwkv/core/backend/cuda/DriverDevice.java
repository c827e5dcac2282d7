package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.tensor.DType;
import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.cuda.cudart.CUctx_st;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUmod_st;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.bytedeco.cuda.global.cublas.*;
import static org.bytedeco.cuda.global.cudart.*;

/**
 * A real NVIDIA GPU through the driver API: its primary context (made current on every calling thread before each
 * driver call, see {@link ContextBinding}), kernels from NVRTC, prebuilt fatbins or the on-disk cache (see
 * {@link #function}), and cuBLAS for GEMM (fp32 sgemm in pedantic math: no TF32, so results stay within 1e-4 of the
 * CPU backend; bf16 operands through cublasGemmEx on tensor cores with fp32 accumulation, see {@link #gemmEx}).
 * All work goes to the legacy default stream, so operations run in call order.
 *
 * <p>Only this class and {@link Nvrtc} touch {@code org.bytedeco.cuda}; everything else reaches them through
 * {@link ai.longrwkv.core.backend.Backends}, so machines without a driver never load these classes.
 */
final class DriverDevice implements Device {
    final int ordinal;
    final int ccMajor, ccMinor, smCount, driverVersion;
    final String deviceName;
    private final long totalMemory;
    private final CUctx_st ctx = new CUctx_st();
    private final ContextBinding binding;
    private final cublasContext blas = new cublasContext();
    private final FloatPointer alphaCell = new FloatPointer(1), betaCell = new FloatPointer(1);
    private final Map<String, CUmod_st> modules = new HashMap<>();
    private final Map<String, String> origin = new TreeMap<>();
    private boolean closed;

    DriverDevice(int ordinal) {
        this.ordinal = ordinal;
        check(cuInit(0), "cuInit");
        int[] count = new int[1];
        check(cuDeviceGetCount(count), "cuDeviceGetCount");
        if (count[0] <= ordinal) {
            throw new IllegalStateException(count[0] == 0 ? "the NVIDIA driver reports no CUDA device"
                    : "CUDA device " + ordinal + " requested but only " + count[0] + " present");
        }
        int[] dev = new int[1];
        check(cuDeviceGet(dev, ordinal), "cuDeviceGet");
        int device = dev[0];
        ccMajor = attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
        ccMinor = attribute(device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        smCount = attribute(device, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        byte[] name = new byte[256];
        check(cuDeviceGetName(name, name.length, device), "cuDeviceGetName");
        int len = 0;
        while (len < name.length && name[len] != 0) len++;
        deviceName = new String(name, 0, len, StandardCharsets.UTF_8);
        int[] ver = new int[1];
        check(cuDriverGetVersion(ver), "cuDriverGetVersion");
        driverVersion = ver[0];
        try (SizeTPointer total = new SizeTPointer(1)) {
            check(cuDeviceTotalMem(total, device), "cuDeviceTotalMem");
            totalMemory = total.get();
        }
        // The primary context: CUDA 13 changed cuCtxCreate's signature, the primary context API did not.
        check(cuDevicePrimaryCtxRetain(ctx, device), "cuDevicePrimaryCtxRetain");
        binding = new ContextBinding(new ContextBinding.Driver() {
            @Override public long current() {
                CUctx_st cur = new CUctx_st();
                check(cuCtxGetCurrent(cur), "cuCtxGetCurrent");
                return cur.address();
            }

            @Override public void setCurrent(long context) { check(cuCtxSetCurrent(ctx), "cuCtxSetCurrent"); }
        }, ctx.address());
        binding.bind();
        int st = cublasCreate_v2(blas);
        if (st == CUBLAS_STATUS_ALLOC_FAILED) throw new IllegalStateException("cuBLAS could not allocate its workspace (device memory full)");
        checkBlas(st, "cublasCreate");
        // Pedantic fp32: no TF32 tensor-core shortcut, whatever NVIDIA_TF32_OVERRIDE says, so parity with the CPU holds.
        checkBlas(cublasSetMathMode(blas, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode");
    }

    private static int attribute(int device, int attr) {
        int[] v = new int[1];
        check(cuDeviceGetAttribute(v, attr, device), "cuDeviceGetAttribute(" + attr + ")");
        return v[0];
    }

    String arch() { return "sm_" + ccMajor + ccMinor; }

    @Override
    public String description() {
        return deviceName + ", " + arch() + ", " + smCount + " SMs, " + (totalMemory >> 20) + " MiB, driver "
                + driverVersion / 1000 + "." + (driverVersion % 1000) / 10 + ", NVRTC " + Nvrtc.version();
    }

    @Override public long totalMemory() { return totalMemory; }

    // ---------------------------------------------------------------- errors
    static void check(int status, String what) {
        if (status != CUDA_SUCCESS) throw new IllegalStateException(what + " failed: " + errorName(status));
    }

    static String errorName(int status) {
        try (PointerPointer<BytePointer> name = new PointerPointer<>(1)) {
            if (cuGetErrorName(status, name) == CUDA_SUCCESS && name.get(0) != null) {
                return name.getString(0) + " (" + status + ")";
            }
        } catch (RuntimeException | LinkageError ignored) {
            // fall through to the number
        }
        return "CUDA error " + status;
    }

    private static void checkBlas(int status, String what) {
        if (status != CUBLAS_STATUS_SUCCESS) {
            throw new IllegalStateException(what + " failed: cuBLAS status " + status + " (" + cublasGetStatusString(status).getString() + ")");
        }
    }

    // ---------------------------------------------------------------- memory
    @Override
    public long malloc(long bytes) {
        binding.bind();
        try (LongPointer p = new LongPointer(1)) {
            int st = cuMemAlloc(p, bytes);
            if (st == CUDA_ERROR_OUT_OF_MEMORY) return 0;
            check(st, "cuMemAlloc(" + bytes + ")");
            return p.get();
        }
    }

    @Override
    public void free(long ptr) {
        binding.bind();
        check(cuMemFree(ptr), "cuMemFree");
    }

    @Override
    public void copyHtoD(long dst, Pointer src, long bytes) {
        binding.bind();
        check(cuMemcpyHtoD(dst, src, bytes), "cuMemcpyHtoD");
    }

    @Override
    public void copyDtoH(Pointer dst, long src, long bytes) {
        binding.bind();
        check(cuMemcpyDtoH(dst, src, bytes), "cuMemcpyDtoH");
    }

    @Override
    public void copyDtoD(long dst, long src, long bytes) {
        binding.bind();
        check(cuMemcpyDtoD(dst, src, bytes), "cuMemcpyDtoD");
    }

    @Override
    public void memsetD32(long dst, int value, long count) {
        binding.bind();
        check(cuMemsetD32(dst, value, count), "cuMemsetD32");
    }

    @Override
    public void memsetD16(long dst, short value, long count) {
        binding.bind();
        check(cuMemsetD16(dst, value, count), "cuMemsetD16");
    }

    @Override
    public void synchronize(String after) {
        binding.bind();
        check(cuCtxSynchronize(), "cuCtxSynchronize after " + after);
    }

    // ---------------------------------------------------------------- kernels
    /**
     * Modules are loaded on first use, in this order: a prebuilt fatbin from {@code scripts/compile-kernels.sh --out
     * DIR} when {@code -Dlongrwkv.cuda.kernels=DIR} is set (scripts/longrwkv and gpu-check.sh set it when the bundle
     * has kernels) and its recorded hash equals the hash of the sources in the jar; the on-disk cache
     * ({@code -Dlongrwkv.cuda.cache}, default {@code $XDG_CACHE_HOME/longrwkv/cuda} or {@code ~/.cache/longrwkv/cuda}),
     * keyed by that hash, the flags, the arch and the NVRTC version; NVRTC to real SASS for this GPU.
     */
    @Override
    public synchronized DeviceFunction function(String module, String name) {
        binding.bind();
        CUmod_st mod = modules.get(module);
        if (mod == null) {
            mod = load(module);
            modules.put(module, mod);
        }
        CUfunc_st fn = new CUfunc_st();
        check(cuModuleGetFunction(fn, mod, name), "cuModuleGetFunction(" + name + ")");
        // the kernel's own parameter list (driver 12.4+), so that Kernel.launch can check every argument against it
        List<Integer> sizes = new ArrayList<>();
        boolean known = true;
        try (SizeTPointer offset = new SizeTPointer(1); SizeTPointer size = new SizeTPointer(1)) {
            for (int i = 0; ; i++) {
                int st = cuFuncGetParamInfo(fn, i, offset, size);
                if (st == CUDA_ERROR_INVALID_VALUE && i > 0) break;   // past the last parameter
                if (st != CUDA_SUCCESS) {                             // a kernel without parameters, or an older driver
                    known = i == 0 && st == CUDA_ERROR_INVALID_VALUE;
                    break;
                }
                sizes.add((int) size.get());
            }
        }
        int[] maxThreads = new int[1];
        check(cuFuncGetAttribute(maxThreads, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, fn), "cuFuncGetAttribute(" + name + ")");
        return new DeviceFunction(module, name, fn, known ? sizes.stream().mapToInt(Integer::intValue).toArray() : null, maxThreads[0]);
    }

    private CUmod_st load(String module) {
        String hash = KernelSources.hash(module);
        byte[] image = prebuilt(module, hash);
        if (image != null) {
            CUmod_st m = tryLoad(image);
            if (m != null) { origin.put(module, "prebuilt"); return m; }
        }
        String key = module + "-" + arch() + "-" + KernelSources.sha256((hash + KernelSources.NVRTC_FLAGS + Nvrtc.version())
                .getBytes(StandardCharsets.UTF_8)).substring(0, 20);
        Path cached = KernelSources.cacheDir().resolve(key + ".cubin");
        if (Files.isRegularFile(cached)) {
            try {
                CUmod_st m = tryLoad(Files.readAllBytes(cached));
                if (m != null) { origin.put(module, "cache"); return m; }
            } catch (IOException ignored) {
                // recompile
            }
        }
        image = Nvrtc.compile(module, arch());
        CUmod_st m = tryLoad(image);
        if (m == null) throw new IllegalStateException("cuModuleLoadData refused the NVRTC output for " + module + ".cu: " + lastLoadError);
        writeCache(cached, image);
        origin.put(module, "nvrtc");
        return m;
    }

    /** The driver's answer to the last refused image, for the error message. */
    private String lastLoadError = "";

    private CUmod_st tryLoad(byte[] image) {
        CUmod_st mod = new CUmod_st();
        try (BytePointer img = new BytePointer(image)) {
            int st = cuModuleLoadData(mod, img);
            if (st == CUDA_SUCCESS) return mod;
            lastLoadError = errorName(st);
            return null;
        }
    }

    /** DIR/name.fatbin if DIR/name.sha256 records the hash of this source and its headers. */
    private static byte[] prebuilt(String module, String hash) {
        String dir = System.getProperty("longrwkv.cuda.kernels");
        if (dir == null || dir.isBlank()) return null;
        Path bin = Paths.get(dir, module + ".fatbin"), sum = Paths.get(dir, module + ".sha256");
        try {
            if (!Files.isRegularFile(bin) || !Files.isRegularFile(sum)) return null;
            if (!Files.readString(sum).trim().startsWith(hash)) return null;
            return Files.readAllBytes(bin);
        } catch (IOException e) {
            return null;
        }
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

    private void checkOpen() {
        if (closed) throw new IllegalStateException("CUDA device used after close()");
    }

    @Override
    public void launch(DeviceFunction f, int grid, int block, int sharedBytes, Pointer params) {
        checkOpen();
        binding.bind();
        check(cuLaunchKernel((CUfunc_st) f.handle(), grid, 1, 1, block, 1, 1, sharedBytes, null, (PointerPointer<?>) params, null),
                "cuLaunchKernel(" + f.name() + ")");
    }

    @Override
    public synchronized boolean sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, int lda,
                                      long b, int ldb, float beta, long c, int ldc) {
        checkOpen();
        binding.bind();
        alphaCell.put(0, alpha);
        betaCell.put(0, beta);
        int st = cublasSgemm_v2(blas, transA ? CUBLAS_OP_T : CUBLAS_OP_N, transB ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k,
                alphaCell, new DeviceFloats(a), lda, new DeviceFloats(b), ldb, betaCell, new DeviceFloats(c), ldc);
        if (st == CUBLAS_STATUS_ALLOC_FAILED) return false;
        checkBlas(st, "cublasSgemm");
        return true;
    }

    /**
     * cublasGemmEx with CUBLAS_COMPUTE_32F and CUBLAS_GEMM_DEFAULT, under CUBLAS_DEFAULT_MATH for this call only. The
     * handle otherwise stays in pedantic math (fp32 sgemm without TF32); pedantic math would also hold a bf16 product
     * to CUBLAS_COMPUTE_32F_PEDANTIC, which keeps it off the tensor cores. With the default math mode and bf16 A and B,
     * cuBLAS runs the product on tensor cores: each bf16 x bf16 product is exact in fp32 and the sums are fp32. The
     * algorithm is CUBLAS_GEMM_DEFAULT and not the deprecated CUBLAS_GEMM_DEFAULT_TENSOR_OP, whose one difference is
     * that it also allows the reduced-precision CUBLAS_COMPUTE_32F_FAST_16F kernels.
     */
    @Override
    public synchronized boolean gemmEx(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, DType aType,
                                       int lda, long b, DType bType, int ldb, float beta, long c, int ldc) {
        checkOpen();
        binding.bind();
        alphaCell.put(0, alpha);
        betaCell.put(0, beta);
        checkBlas(cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode(default)");
        int st;
        try {
            st = cublasGemmEx(blas, transA ? CUBLAS_OP_T : CUBLAS_OP_N, transB ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k,
                    alphaCell, new DeviceFloats(a), cudaType(aType), lda, new DeviceFloats(b), cudaType(bType), ldb,
                    betaCell, new DeviceFloats(c), CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
        } finally {
            checkBlas(cublasSetMathMode(blas, CUBLAS_PEDANTIC_MATH), "cublasSetMathMode(pedantic)");
        }
        if (st == CUBLAS_STATUS_ALLOC_FAILED) return false;
        checkBlas(st, "cublasGemmEx(" + aType.label() + " x " + bType.label() + " -> fp32)");
        return true;
    }

    /** The cudaDataType of a dtype (library_types.h: CUDA_R_32F = 0, CUDA_R_16BF = 14). */
    static int cudaType(DType t) {
        return switch (t) {
            case F32 -> CUDA_R_32F;
            case BF16 -> CUDA_R_16BF;
        };
    }

    /** A JavaCPP pointer object that holds a device address, for cuBLAS's typed pointers. */
    private static final class DeviceFloats extends FloatPointer {
        DeviceFloats(long deviceAddress) {
            super();
            this.address = deviceAddress;
        }
    }

    // ---------------------------------------------------------------- NCCL
    /** Makes this device's context current on the calling thread (NCCL's helper and watchdog threads). */
    void bindContext() { binding.bind(); }

    /** ncclGetUniqueId (loads libnccl.so.2 on first use, see {@link DriverNccl}). */
    @Override
    public byte[] ncclUniqueId() {
        checkOpen();
        return DriverNccl.uniqueId();
    }

    @Override
    public NcclComm ncclCommInitRank(byte[] id, int rank, int nranks, long timeoutMillis) {
        checkOpen();
        return DriverNccl.initRank(this, id, rank, nranks, timeoutMillis);
    }

    @Override public synchronized Map<String, String> moduleOrigins() { return new TreeMap<>(origin); }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        binding.bind();
        cublasDestroy_v2(blas);
        alphaCell.close();
        betaCell.close();
        // The primary context is kept: other backends in this process may share it, and the driver frees it at exit.
    }
}
