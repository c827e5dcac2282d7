package ai.longrwkv.core.backend.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The CUDA backend's kernel sources (this package's resources) and their shared launch configuration. Both devices
 * build their modules from exactly these bytes, and the block sizes the backend launches with are read from
 * {@code launch_config.cuh}, the header the kernels size their shared arrays with, so the two cannot drift apart.
 */
final class KernelSources {
    /** The kernel sources, each one CUDA module. */
    static final List<String> MODULES = List.of("wkv5", "wkv5_chunked", "elementwise", "norm", "loss", "bf16");
    /** Headers the sources include (given to NVRTC by name, written next to the sources for g++ and nvcc). */
    static final List<String> HEADERS = List.of("launch_config.cuh");

    /**
     * Flags for NVRTC (DriverDevice) and nvcc (scripts/compile-kernels.sh), one per line in compile_flags.txt, the
     * one place they are written. --fmad=false keeps a*b+c as two roundings like the Java reference (the kernels
     * write fmaf where they want a fused multiply-add).
     */
    static final List<String> NVRTC_FLAGS = new String(read("compile_flags.txt"), StandardCharsets.UTF_8).lines()
            .map(String::trim).filter(l -> !l.isEmpty() && !l.startsWith("#")).toList();

    static final int ELEMENTWISE_THREADS = config("LONGRWKV_ELEMENTWISE_THREADS");
    static final int SUMSQ_THREADS = config("LONGRWKV_SUMSQ_THREADS");
    static final int SUMSQ_MAX_BLOCKS = config("LONGRWKV_SUMSQ_MAX_BLOCKS");
    static final int NORM_MAX_THREADS = config("LONGRWKV_NORM_MAX_THREADS");
    static final int CE_THREADS = config("LONGRWKV_CE_THREADS");
    static final int WKV_CHUNK_LEN = config("LONGRWKV_WKV_CHUNK_LEN");
    static final int WKV_CHUNK_THREADS = config("LONGRWKV_WKV_CHUNK_THREADS");

    private KernelSources() { }

    static byte[] read(String file) {
        try (InputStream in = KernelSources.class.getResourceAsStream(file)) {
            if (in == null) throw new IllegalStateException("kernel source " + file + " missing from the classpath");
            return in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("reading kernel source " + file + ": " + e.getMessage(), e);
        }
    }

    static byte[] source(String module) { return read(module + ".cu"); }

    static Map<String, byte[]> headers() {
        Map<String, byte[]> h = new HashMap<>();
        for (String name : HEADERS) h.put(name, read(name));
        return h;
    }

    /**
     * SHA-256 of a module's source, every header and the compile flags: what a cached or prebuilt image must have
     * been built from (scripts/compile-kernels.sh computes the same bytes: the source, then name and content of each
     * header, then name and content of compile_flags.txt).
     */
    static String hash(String module) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(source(module));
            for (String name : HEADERS) {
                md.update(name.getBytes(StandardCharsets.UTF_8));
                md.update(read(name));
            }
            md.update("compile_flags.txt".getBytes(StandardCharsets.UTF_8));
            md.update(read("compile_flags.txt"));
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    static String sha256(byte[] data) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(data));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static int config(String name) {
        String text = new String(read("launch_config.cuh"), StandardCharsets.UTF_8);
        Matcher m = Pattern.compile("(?m)^#define\\s+" + name + "\\s+(\\d+)").matcher(text);
        if (!m.find()) throw new IllegalStateException("launch_config.cuh defines no " + name);
        return Integer.parseInt(m.group(1));
    }

    /**
     * The per-user cache of built kernels ({@code -Dlongrwkv.cuda.cache}, default {@code $XDG_CACHE_HOME/longrwkv/cuda}
     * or {@code ~/.cache/longrwkv/cuda}).
     */
    static java.nio.file.Path cacheDir() {
        String prop = System.getProperty("longrwkv.cuda.cache");
        if (prop != null && !prop.isBlank()) return java.nio.file.Paths.get(prop);
        String xdg = System.getenv("XDG_CACHE_HOME");
        java.nio.file.Path base = xdg != null && !xdg.isBlank() ? java.nio.file.Paths.get(xdg)
                : java.nio.file.Paths.get(System.getProperty("user.home"), ".cache");
        return base.resolve("longrwkv").resolve("cuda");
    }

}
