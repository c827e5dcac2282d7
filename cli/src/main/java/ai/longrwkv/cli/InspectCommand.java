package ai.longrwkv.cli;

import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.io.ModelFormatException;
import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.train.StateFile;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;

/** Shows what a model file is without reading its tensor data. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = {"Show what a model file holds: format, architecture (x052 or what else it is), dimensions "
                + "L, C, H, N, F, V, parameter count, stored dtypes and data size. For .pth and safetensors files only the "
                + "shapes are read, so even a 15 GB checkpoint is inspected in seconds (rwkv.cpp files are read whole)."})
final class InspectCommand implements Callable<Integer> {
    @Parameters(index = "0", arity = "0..1", paramLabel = "FILE", description = "Model or state file: .pth, .safetensors or rwkv.cpp .bin.")
    Path file;

    @Option(names = "--model", paramLabel = "FILE", description = "The same as the FILE argument (the spelling the other commands use).")
    Path modelOption;

    @Option(names = "--tensors", description = "Also list every tensor with its shape and dtype.")
    boolean listTensors;

    @Option(names = "--decay", description = "Also show each head's time_decay as memory lengths: 1/(1 - w) tokens per key channel, w = exp(-exp(time_decay)) the decay per token (reads the values).")
    boolean decay;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        if ((file == null) == (modelOption == null)) {
            throw new IllegalArgumentException("give the file to inspect once: inspect FILE or inspect --model FILE");
        }
        if (file == null) file = modelOption;
        ModelFiles.Format format = ModelFiles.detectFormat(file);
        ModelWeights w = format == ModelFiles.Format.SAFETENSORS ? Safetensors.readShapes(file) : ConvertCommand.readAnyFormat(file);
        long fileBytes = fileSize(file);

        out.printf(Locale.ROOT, "file:         %s (%s, %s)%n", file, describe(format), bytes(fileBytes));
        String adapter = adapterDescription(w);
        boolean stateOnly = isStateFile(w);
        out.println("architecture: " + (adapter != null ? adapter : architecture(w)));
        // a tuned state stored in a model file is not a model parameter: counted and listed on its own
        long params = 0, stateValues = 0;
        int paramTensors = 0, stateTensors = 0;
        for (Map.Entry<String, ModelWeights.Entry> e : w.entries().entrySet()) {
            long n = HostTensor.numel(e.getValue().shape());
            if (!stateOnly && StateFile.isStateKey(e.getKey())) {
                stateValues += n;
                stateTensors++;
            } else {
                params += n;
                paramTensors++;
            }
        }
        out.printf(Locale.ROOT, "%s   %,d in %d tensors%n", stateOnly ? "state:     " : "parameters:", params, paramTensors);
        if (stateTensors > 0) {
            out.printf(Locale.ROOT, "tuned state:  %,d values in %d tensors (blocks.*.att.time_state, [H, N, N]; not counted above); "
                    + "forward, generate, chat and eval start from it unless --state says otherwise%n", stateValues, stateTensors);
        }
        Map<String, long[]> byDtype = new TreeMap<>(); // dtype -> {tensors, bytes}
        long dataBytes = 0;
        for (ModelWeights.Entry e : w.entries().values()) {
            long b = HostTensor.numel(e.shape()) * bytesPer(e.dtype());
            long[] c = byDtype.computeIfAbsent(e.dtype(), k -> new long[2]);
            c[0]++;
            c[1] += b;
            dataBytes += b;
        }
        StringBuilder dtypes = new StringBuilder();
        byDtype.forEach((d, c) -> dtypes.append(dtypes.length() == 0 ? "" : ", ").append(d).append(" x ").append(c[0]));
        if (format == ModelFiles.Format.RWKV_CPP) dtypes.append(" (as read; the file stores ").append(rwkvCppType(file)).append(")");
        out.println("dtypes:       " + (dtypes.length() == 0 ? "(no tensors)" : dtypes));
        out.println("data size:    " + bytes(dataBytes));
        if (listTensors) {
            int width = w.keys().stream().mapToInt(String::length).max().orElse(0);
            for (Map.Entry<String, ModelWeights.Entry> e : w.entries().entrySet()) {
                out.printf(Locale.ROOT, "  %-" + width + "s  %-20s %s%n", e.getKey(), Arrays.toString(e.getValue().shape()), e.getValue().dtype());
            }
        }
        if (decay) printDecay(out, ModelFiles.load(file));
        out.flush();
        return 0;
    }

    private static boolean isStateFile(ModelWeights w) {
        return !w.keys().isEmpty() && w.keys().stream().allMatch(k -> k.matches("blocks\\.\\d+\\.att\\.time_state"));
    }

    /**
     * A LoRA adapter file (keys X.lora_A [r, in] / X.lora_B [out, r], maybe with other trained tensors): its
     * targets, rank and parameter count; null if the file is not one.
     */
    static String adapterDescription(ModelWeights w) {
        java.util.TreeSet<String> targets = new java.util.TreeSet<>();
        java.util.TreeSet<Integer> ranks = new java.util.TreeSet<>();
        java.util.TreeSet<Integer> layers = new java.util.TreeSet<>();
        int adapters = 0;
        long loraParams = 0, otherParams = 0;
        int others = 0;
        for (Map.Entry<String, ModelWeights.Entry> e : w.entries().entrySet()) {
            String k = e.getKey();
            int[] shape = e.getValue().shape();
            if (k.endsWith(".lora_A") || k.endsWith(".lora_B")) {
                loraParams += HostTensor.numel(shape);
                if (k.endsWith(".lora_A")) {
                    adapters++;
                    if (shape.length == 2) ranks.add(shape[0]);
                }
                java.util.regex.Matcher m = java.util.regex.Pattern.compile("blocks\\.(\\d+)\\.(.+)\\.lora_[AB]").matcher(k);
                if (m.matches()) {
                    layers.add(Integer.parseInt(m.group(1)));
                    targets.add(m.group(2));
                } else {
                    targets.add(k.substring(0, k.length() - ".lora_A".length()));
                }
            } else {
                otherParams += HostTensor.numel(shape);
                others++;
            }
        }
        if (adapters == 0 && loraParams == 0) return null;
        return String.format(Locale.ROOT, "LoRA adapter (not a model: merge it with 'lora merge --model BASE --lora FILE')%n"
                        + "adapters:     %d on %s%s, rank %s, %,d LoRA parameters%s",
                adapters, String.join(",", targets), layers.isEmpty() ? "" : " in " + layers.size() + " layers",
                ranks.size() == 1 ? ranks.first().toString() : ranks.toString(), loraParams,
                others == 0 ? "" : String.format(Locale.ROOT, "; plus %d other trained tensors (%,d values) that replace the base model's", others, otherParams));
    }

    /** "RWKV-5.2 (x052)" with dimensions, a state file, or what ModelConfig.checkArchitecture says it is instead. */
    private static String architecture(ModelWeights w) {
        if (isStateFile(w)) {
            int[] s = w.shape(w.keys().iterator().next());
            return "x052 state (att.time_state for " + w.keys().size() + " layers"
                    + (s.length == 3 ? ", H=" + s[0] + " N=" + s[1] : "") + ")";
        }
        try {
            ModelConfig.checkArchitecture(w);
        } catch (ModelFormatException e) {
            return withoutSource(e.getMessage(), w.source());
        }
        try {
            ModelConfig c = ModelConfig.fromWeights(w, ModelFiles.defaultGroupNormEps(w));
            return String.format(Locale.ROOT, "RWKV-5.2 (x052)%ndimensions:   L=%d C=%d H=%d N=%d F=%d V=%d (ln_x eps %s)",
                    c.nLayer(), c.nEmbd(), c.nHead(), c.headSize(), c.dimFfn(), c.vocabSize(),
                    Double.isNaN(w.impliedGroupNormEps()) ? "64e-5 unless the file says otherwise" : Double.toString(w.impliedGroupNormEps()));
        } catch (ModelFormatException | IllegalArgumentException e) {
            return "RWKV-5.2 (x052) keys, but " + withoutSource(e.getMessage(), w.source());
        }
    }

    private static String withoutSource(String message, String source) {
        return message.startsWith(source + ": ") ? message.substring(source.length() + 2) : message;
    }

    /**
     * Per layer and head, the key channels' memory 1/(1 - w) in tokens, longest first: what a channel keeps of a value
     * written that long ago is 1/e. Channels over 100k tokens are the ones that can carry a pass key across 128k.
     */
    static void printDecay(PrintWriter out, ModelWeights w) {
        out.println("time_decay as memory (tokens until 1/e; w = exp(-exp(time_decay)) per token), channels longest first:");
        for (int l = 0; ; l++) {
            String key = "blocks." + l + ".att.time_decay";
            if (!w.keys().contains(key)) {
                if (l == 0) out.println("  (no blocks.0.att.time_decay: not an x052 model)");
                break;
            }
            HostTensor t = w.get(key);
            int heads = t.shape().length == 2 ? t.dim(0) : 1;
            int n = t.size() / heads;
            for (int h = 0; h < heads; h++) {
                double[] mem = new double[n];
                for (int i = 0; i < n; i++) {
                    double rate = Math.exp(t.data()[h * n + i]);   // -ln w
                    mem[i] = 1 / -Math.expm1(-rate);
                }
                Arrays.sort(mem);
                StringBuilder b = new StringBuilder();
                int longMemory = 0;
                for (int i = n - 1; i >= 0; i--) {
                    b.append(' ').append(memory(mem[i]));
                    if (mem[i] > 1e5) longMemory++;
                }
                out.printf(Locale.ROOT, "  layer %d head %d (%d of %d over 100k):%s%n", l, h, longMemory, n, b);
            }
        }
    }

    private static String memory(double tokens) {
        if (tokens >= 1e6) return String.format(Locale.ROOT, "%.0fM", tokens / 1e6);
        if (tokens >= 1e3) return String.format(Locale.ROOT, "%.0fk", tokens / 1e3);
        return String.format(Locale.ROOT, "%.0f", tokens);
    }

    private static String describe(ModelFiles.Format f) {
        return switch (f) {
            case PYTORCH_ZIP -> "PyTorch zip checkpoint";
            case SAFETENSORS -> "safetensors";
            case RWKV_CPP -> "rwkv.cpp";
            case UNKNOWN -> "unknown format";
        };
    }

    private static long bytesPer(String dtype) {
        return switch (dtype) {
            case "F64", "I64", "U64" -> 8;
            case "F32", "I32", "U32" -> 4;
            case "F16", "BF16", "I16", "U16" -> 2;
            default -> 1;
        };
    }

    private static String bytes(long n) {
        if (n < 1_000_000) return String.format(Locale.ROOT, "%,d bytes", n);
        if (n < 1_000_000_000) return String.format(Locale.ROOT, "%,d bytes (%.1f MB)", n, n / 1e6);
        return String.format(Locale.ROOT, "%,d bytes (%.2f GB)", n, n / 1e9);
    }

    private static long fileSize(Path f) {
        try {
            return Files.size(f);
        } catch (IOException e) {
            throw new ModelFormatException(f + ": cannot read the file size: " + e.getMessage(), e);
        }
    }

    /** The file type in the rwkv.cpp header (int32 at byte 20). */
    private static String rwkvCppType(Path f) {
        try (InputStream in = Files.newInputStream(f)) {
            byte[] h = in.readNBytes(24);
            if (h.length < 24) return "an unknown type";
            int type = ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN).getInt(20);
            return type == 0 ? "FP32" : type == 1 ? "FP16 (1-D tensors FP32)" : "type " + type;
        } catch (IOException e) {
            throw new ModelFormatException(f + ": cannot read the file: " + e.getMessage(), e);
        }
    }
}
