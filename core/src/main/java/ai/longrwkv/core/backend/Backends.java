package ai.longrwkv.core.backend;

import ai.longrwkv.core.backend.cpu.CpuBackend;

import java.lang.reflect.InvocationTargetException;
import java.util.Locale;

/**
 * The one guarded entry point to the backends: {@code --device cpu|cuda|auto|emulated}. "emulated" is the CUDA backend
 * on the emulated device: the real kernels compiled with g++ and run on the CPU (for development and CI; slow).
 *
 * <p>The CUDA backend is reached only by reflection and only when "cuda" or "auto" is asked for, so that no
 * {@code org.bytedeco.cuda} class is loaded otherwise: on a machine without an NVIDIA driver the first touch of those
 * classes fails in a static initialiser ({@code UnsatisfiedLinkError: libcuda.so.1}) and poisons them for the rest of the
 * process. The outcome of the first CUDA attempt is remembered, so that a failure is reported the same way every time.
 */
public final class Backends {
    private static final String CUDA_CLASS = "ai.longrwkv.core.backend.cuda.CudaBackend";

    /** Why CUDA cannot be used (null before the first attempt, or when it worked). */
    private static volatile String cudaFailure;
    private static volatile boolean cudaTried;

    private Backends() { }

    /**
     * A backend for {@code device}: "cpu"; "cuda" (throws {@link IllegalArgumentException} with the reason when the GPU
     * cannot be used); "auto" (the GPU when it works, else the CPU, with the reason in {@link #cudaUnavailableReason()}).
     * Case-insensitive; null means "cpu".
     */
    public static Backend create(String device) {
        String d = device == null ? "cpu" : device.trim().toLowerCase(Locale.ROOT);
        switch (d) {
            case "cpu":
                return new CpuBackend();
            case "cuda":
            case "gpu": {
                Backend b = tryCuda();
                if (b == null) throw new IllegalArgumentException("--device cuda: the GPU cannot be used: " + cudaFailure);
                return b;
            }
            case "emulated":
            case "cuda-emulated": {
                try {
                    Class<?> c = Class.forName(CUDA_CLASS);
                    return (Backend) c.getMethod("emulated").invoke(null);
                } catch (InvocationTargetException e) {
                    Throwable cause = e.getCause() != null ? e.getCause() : e;
                    throw new IllegalArgumentException("--device emulated: the emulated CUDA device cannot start: " + firstLine(String.valueOf(cause.getMessage())));
                } catch (ReflectiveOperationException e) {
                    throw new IllegalArgumentException("--device emulated: " + e.getMessage());
                }
            }
            case "auto": {
                Backend b = tryCuda();
                return b != null ? b : new CpuBackend();
            }
            default:
                throw new IllegalArgumentException("unknown device '" + device + "' (expected cpu, cuda, auto or emulated)");
        }
    }

    /**
     * The backend for device number {@code ordinal} of {@code device} (--devices): "cuda" GPU {@code ordinal}, "emulated"
     * a new emulated device each call (the ordinal only names it); the CPU has one device.
     */
    public static Backend create(String device, int ordinal) {
        String d = device == null ? "cpu" : device.trim().toLowerCase(Locale.ROOT);
        if (!d.equals("cuda") && !d.equals("gpu")) {
            if ((d.equals("cpu") || d.equals("auto")) && ordinal != 0) {
                throw new IllegalArgumentException("--devices: device " + ordinal + " of --device " + device + ": several devices need --device cuda (or emulated)");
            }
            return create(device);
        }
        if (ordinal == 0 || tryCudaFailed()) return create(device);
        try {
            Class<?> c = Class.forName(CUDA_CLASS);
            return (Backend) c.getMethod("onDevice", int.class).invoke(null, ordinal);
        } catch (InvocationTargetException e) {
            throw new IllegalArgumentException("--devices: GPU " + ordinal + " cannot be used: " + explain(e.getCause() != null ? e.getCause() : e));
        } catch (ReflectiveOperationException | LinkageError e) {
            throw new IllegalArgumentException("--devices: GPU " + ordinal + " cannot be used: " + explain(e));
        }
    }

    private static synchronized boolean tryCudaFailed() {
        return cudaTried && cudaFailure != null;
    }

    /** True when the last CUDA attempt created a backend (false before any attempt). */
    public static boolean cudaTriedAndWorked() {
        return cudaTried && cudaFailure == null;
    }

    /**
     * Why the GPU is not used: the reason of the failed CUDA attempt in this process, or null when none failed.
     * Call it after {@link #create} with "auto" to tell the user why the CPU was chosen.
     */
    public static String cudaUnavailableReason() {
        return cudaFailure;
    }

    /** One line saying which device a backend from {@link #create} runs on, and for "auto" on CPU, why. */
    public static String describe(Backend backend) {
        String reason = cudaFailure;
        boolean cpu = !backend.getClass().getName().equals(CUDA_CLASS);
        return "device: " + backend.name() + (cpu && reason != null ? " (GPU not used: " + reason + ")" : "");
    }

    /**
     * Creates the CUDA backend, or returns null and records why not. After one failure it does not retry: a failed
     * native load leaves the JNI classes unusable (NoClassDefFoundError) for the rest of the process.
     */
    private static synchronized Backend tryCuda() {
        if (cudaTried && cudaFailure != null) return null;
        cudaTried = true;
        try {
            Class<?> c = Class.forName(CUDA_CLASS);
            Backend b = (Backend) c.getConstructor().newInstance();
            cudaFailure = null;
            return b;
        } catch (InvocationTargetException e) {
            cudaFailure = explain(e.getCause() != null ? e.getCause() : e);
        } catch (Throwable e) {   // LinkageError from a missing native library, reflection errors
            cudaFailure = explain(e);
        }
        return null;
    }

    /** A one-line reason from the failure of a CUDA start, naming the library or the driver's answer. */
    static String explain(Throwable e) {
        Throwable root = e;
        StringBuilder chain = new StringBuilder();
        while (root != null) {
            if (root.getMessage() != null) chain.append(' ').append(root.getMessage());
            if (root.getCause() == null || root.getCause() == root) break;
            root = root.getCause();
        }
        String all = chain.toString();
        String first = firstLine(root.getMessage() != null ? root.getMessage() : root.toString());
        if (all.contains("libcuda.so") || all.contains("jnicudart") || all.contains("libcudart")) {
            int at = all.indexOf("libcuda.so");
            if (at >= 0) {
                // "…/libjnicudart.so: libcuda.so.1: cannot open shared object file: …" -> the part from libcuda on
                return "no NVIDIA driver (" + firstLine(all.substring(at)) + ")";
            }
            return "the CUDA runtime could not be loaded (is the CUDA 13 toolkit installed, or LD_LIBRARY_PATH set?) ("
                    + root.getClass().getSimpleName() + ": " + first + ")";
        }
        if (all.contains("nvrtc")) return "NVRTC (libnvrtc.so.13) could not be loaded or failed: " + first;
        if (all.contains("cublas")) return "cuBLAS (libcublas.so.13) could not be loaded or failed: " + first;
        if (all.contains("CUDA_ERROR_NO_DEVICE") || all.contains("no CUDA device")) return "the NVIDIA driver reports no CUDA device";
        return root.getClass().getSimpleName() + ": " + first;
    }

    private static String firstLine(String s) {
        int nl = s.indexOf('\n');
        return (nl < 0 ? s : s.substring(0, nl)).trim();
    }
}
