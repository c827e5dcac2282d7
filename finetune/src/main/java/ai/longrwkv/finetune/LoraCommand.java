package ai.longrwkv.finetune;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.io.ModelFiles;
import ai.longrwkv.core.io.Safetensors;
import ai.longrwkv.core.io.pth.PthReader;
import ai.longrwkv.core.io.pth.PthWriter;
import ai.longrwkv.core.model.LoraSet;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.tensor.HostTensor;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

@Command(name = "lora", mixinStandardHelpOptions = true, description = "LoRA adapter tools.", subcommands = LoraCommand.Merge.class)
public final class LoraCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    @Command(name = "merge", mixinStandardHelpOptions = true,
            description = "W += (alpha / r) B A for every adapter (and the adapter file's other trained tensors replace the base's); "
                    + "writes a plain .pth without LoRA keys that the RWKV ecosystem loads.")
    public static final class Merge implements Callable<Integer> {
        @Option(names = "--model", required = true, description = "Base model.") Path model;
        @Option(names = "--lora", required = true, description = "Adapter file (lora-final.pth from finetune --mode lora).") Path lora;
        @Option(names = "--lora-alpha", description = "LoRA alpha (default: from the adapter's .json beside it).") Double alpha;
        @Option(names = "--out", required = true, description = "Merged model: .pth / .pt (torch zip) or .safetensors (F32), by extension.") Path out;
        @Option(names = "--dtype", defaultValue = "bf16", description = "bf16 | fp16 | fp32 for .pth output (default: ${DEFAULT-VALUE}).") String dtype;

        @Override
        public Integer call() throws IOException {
            PthWriter.Dtype type = PthWriter.Dtype.parse(dtype);
            ModelFiles.OutputFormat outFormat = ModelFiles.outputFormat(out, "--out");
            if (outFormat == ModelFiles.OutputFormat.SAFETENSORS && type == PthWriter.Dtype.FP16) {
                throw new IllegalArgumentException("--dtype " + dtype + ": safetensors output is always F32; --dtype applies to .pth output");
            }
            if (alpha != null && !Double.isFinite(alpha)) {
                throw new IllegalArgumentException("--lora-alpha " + alpha + ": expected a finite number (it scales every update)");
            }
            Map<String, HostTensor> adapter = switch (ModelFiles.detectFormat(lora)) {
                case PYTORCH_ZIP -> PthReader.readTensors(lora);
                case SAFETENSORS -> Safetensors.readTensors(lora);
                default -> throw new IllegalArgumentException(lora + ": an adapter must be a .pth or .safetensors file");
            };
            double a = alpha != null ? alpha : alphaFromInfo(lora);
            ModelWeights base = ModelFiles.load(model);
            // every adapter key is X.lora_A or X.lora_B with its partner, shaped for X.weight; other keys replace base tensors
            Map<String, HostTensor> extras = new LinkedHashMap<>();
            Integer rank = null;
            for (String k : adapter.keySet()) {   // misspelled keys first: "no lora_B" would hide that it is there as "lora_b"
                if (!k.endsWith(".lora_A") && !k.endsWith(".lora_B") && k.toLowerCase(java.util.Locale.ROOT).contains("lora")) {
                    throw new IllegalArgumentException(lora + ": tensor '" + k + "' is not a LoRA key: adapter tensors are named "
                            + "X.lora_A [r, in] and X.lora_B [out, r] (X.weight being the adapted weight)");
                }
            }
            for (Map.Entry<String, HostTensor> e : adapter.entrySet()) {
                float[] d = e.getValue().data();
                for (int i = 0; i < d.length; i++) {
                    if (!Float.isFinite(d[i])) {
                        throw new IllegalArgumentException(lora + ": tensor '" + e.getKey() + "' holds " + d[i] + " at index " + i
                                + "; an adapter must be finite (the merged model would be " + d[i] + " there too)");
                    }
                }
            }
            for (Map.Entry<String, HostTensor> e : adapter.entrySet()) {
                String k = e.getKey();
                boolean isA = k.endsWith(".lora_A"), isB = k.endsWith(".lora_B");
                if (!isA && !isB) {
                    if (!base.has(k)) throw new IllegalArgumentException(lora + ": tensor '" + k + "' is not in the model " + model);
                    if (!java.util.Arrays.equals(base.shape(k), e.getValue().shape())) {
                        throw new IllegalArgumentException(lora + ": tensor '" + k + "' has shape " + java.util.Arrays.toString(e.getValue().shape())
                                + " but the model's has " + java.util.Arrays.toString(base.shape(k)));
                    }
                    extras.put(k, e.getValue());
                    continue;
                }
                String stem = k.substring(0, k.length() - ".lora_A".length());
                String partner = stem + (isA ? ".lora_B" : ".lora_A");
                if (!adapter.containsKey(partner)) {
                    throw new IllegalArgumentException(lora + ": has '" + k + "' but no '" + partner + "' (each adapter needs both)");
                }
                String weightKey = stem + ".weight";
                if (!base.has(weightKey)) {
                    throw new IllegalArgumentException(lora + ": adapter '" + k + "' is for '" + weightKey + "', which the model " + model + " does not have");
                }
                int[] w = base.shape(weightKey), s = e.getValue().shape();
                if (w.length != 2 || s.length != 2 || (isA ? s[1] != w[1] : s[0] != w[0])) {
                    throw new IllegalArgumentException(lora + ": '" + k + "' has shape " + java.util.Arrays.toString(s) + ", expected "
                            + (isA ? "[r, " + (w.length == 2 ? w[1] : "in") + "]" : "[" + w[0] + ", r]") + " for '" + weightKey + "' "
                            + java.util.Arrays.toString(w));
                }
                int r = isA ? s[0] : s[1];
                if (r < 1) throw new IllegalArgumentException(lora + ": '" + k + "' has shape " + java.util.Arrays.toString(s) + ": rank 0");
                if (rank == null) rank = r;
                if (r != rank) throw new IllegalArgumentException(lora + ": '" + k + "' has rank " + r + " but other adapters have rank " + rank);
            }
            if (rank == null) {
                throw new IllegalArgumentException(lora + ": no LoRA tensors (keys ending in .lora_A and .lora_B); is this an adapter file?");
            }
            try (Backend be = TrainingRun.backend("cpu"); Rwkv5Model m = Rwkv5Model.load(be, base, ModelFiles.defaultGroupNormEps(base));
                 LoraSet set = LoraSet.fromTensors(be, adapter, a)) {
                for (String k : set.adapters().keySet()) {
                    if (!m.params().has(k)) throw new IllegalArgumentException(lora + ": adapter for '" + k + "', which the model does not have");
                }
                set.mergeInto(m.params());
                for (Map.Entry<String, HostTensor> e : extras.entrySet()) {
                    if (!m.params().has(e.getKey())) throw new IllegalArgumentException(lora + ": tensor '" + e.getKey() + "' is not a model parameter");
                    try (var u = be.upload(e.getValue())) {
                        be.copy(u, m.params().get(e.getKey()));
                    }
                }
                ModelWeights merged = m.toWeights(out.toString());
                // a tuned state stored in the base model (blocks.N.att.time_state) is not a parameter: carry it over
                Map<String, HostTensor> keptState = new LinkedHashMap<>();
                for (String k : base.keys()) if (ai.longrwkv.core.train.StateFile.isStateKey(k)) keptState.put(k, base.get(k));
                if (!keptState.isEmpty()) {
                    Map<String, HostTensor> all = new LinkedHashMap<>(merged.tensors());
                    all.putAll(keptState);
                    merged = new ModelWeights(all, out.toString(), merged.impliedGroupNormEps());
                }
                if (outFormat == ModelFiles.OutputFormat.PTH) {
                    PthWriter.write(out, merged, type, null);
                } else {
                    Safetensors.write(out, merged.tensors(), Map.of("format", "pt"));
                    type = PthWriter.Dtype.FP32;
                }
                System.out.printf("merged %d adapters (r=%d, alpha=%s) and %d other tensors into %s (%s)%n",
                        set.adapters().size(), set.rank(), a, extras.size(), out, outFormat == ModelFiles.OutputFormat.PTH ? type : "safetensors F32");
            }
            return 0;
        }

        /** alpha from the adapter's json (finetune writes {"r": .., "alpha": .., "targets": .., "extra": ..}). */
        static double alphaFromInfo(Path lora) {
            String name = lora.getFileName().toString();
            Path info = lora.resolveSibling(name.replaceFirst("\\.(pth|pt|safetensors)$", "") + ".json");
            if (!Files.isRegularFile(info)) {
                throw new IllegalArgumentException("no " + info + " beside the adapter: give --lora-alpha");
            }
            String text;
            try {
                if (Files.size(info) > (1 << 20)) throw new IllegalArgumentException(info + ": more than 1 MiB; expected a small JSON object");
                text = Files.readString(info);
            } catch (java.nio.charset.MalformedInputException e) {
                throw new IllegalArgumentException(info + ": not UTF-8 text; expected a JSON object with \"r\" and \"alpha\"");
            } catch (IOException e) {
                throw new IllegalArgumentException(info + ": cannot read the adapter info: " + e.getMessage());
            }
            if (text.isBlank()) {
                throw new IllegalArgumentException(info + ": empty file; expected a JSON object such as {\"r\": 8, \"alpha\": 16} (or give --lora-alpha)");
            }
            JsonElement root;
            try {
                com.google.gson.stream.JsonReader reader = new com.google.gson.stream.JsonReader(new java.io.StringReader(text));
                reader.setStrictness(com.google.gson.Strictness.STRICT);
                root = JsonParser.parseReader(reader);
                if (reader.peek() != com.google.gson.stream.JsonToken.END_DOCUMENT) throw new com.google.gson.JsonParseException("text after the JSON object");
            } catch (RuntimeException | IOException e) {
                throw new IllegalArgumentException(info + ": not valid JSON; expected a JSON object such as {\"r\": 8, \"alpha\": 16} (or give --lora-alpha)");
            }
            if (root == null || !root.isJsonObject()) {
                throw new IllegalArgumentException(info + ": expected a JSON object with \"r\" and \"alpha\", found " + abbreviate(String.valueOf(root)));
            }
            JsonObject o = root.getAsJsonObject();
            JsonElement al = o.get("alpha");
            if (al == null) throw new IllegalArgumentException(info + ": no key \"alpha\" (give --lora-alpha)");
            if (!al.isJsonPrimitive() || !al.getAsJsonPrimitive().isNumber()) {
                throw new IllegalArgumentException(info + ": key \"alpha\" must be a number, found " + abbreviate(al.toString()));
            }
            double v = al.getAsDouble();
            if (!Double.isFinite(v)) throw new IllegalArgumentException(info + ": key \"alpha\" = " + al + ", expected a finite number");
            JsonElement r = o.get("r");
            if (r != null && (!r.isJsonPrimitive() || !r.getAsJsonPrimitive().isNumber())) {
                throw new IllegalArgumentException(info + ": key \"r\" must be a number, found " + abbreviate(r.toString()));
            }
            return v;
        }

        private static String abbreviate(String s) {
            return s.length() <= 60 ? s : s.substring(0, 60) + "...";
        }
    }
}
