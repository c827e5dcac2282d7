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
        @Option(names = "--out", required = true, description = "Merged model (.pth).") Path out;
        @Option(names = "--dtype", defaultValue = "bf16", description = "bf16 | fp16 | fp32 (default: ${DEFAULT-VALUE}).") String dtype;

        @Override
        public Integer call() throws IOException {
            PthWriter.Dtype type = PthWriter.Dtype.parse(dtype);
            Map<String, HostTensor> adapter = switch (ModelFiles.detectFormat(lora)) {
                case PYTORCH_ZIP -> PthReader.readTensors(lora);
                case SAFETENSORS -> Safetensors.readTensors(lora);
                default -> throw new IllegalArgumentException(lora + ": an adapter must be a .pth or .safetensors file");
            };
            double a = alpha != null ? alpha : alphaFromInfo(lora);
            ModelWeights base = ModelFiles.load(model);
            try (Backend be = TrainingRun.backend("cpu"); Rwkv5Model m = Rwkv5Model.load(be, base, ModelFiles.defaultGroupNormEps(base));
                 LoraSet set = LoraSet.fromTensors(be, adapter, a)) {
                for (String k : set.adapters().keySet()) {
                    if (!m.params().has(k)) throw new IllegalArgumentException(lora + ": adapter for '" + k + "', which the model does not have");
                }
                set.mergeInto(m.params());
                Map<String, HostTensor> extras = new LinkedHashMap<>();
                adapter.forEach((k, v) -> { if (!k.contains(".lora_")) extras.put(k, v); });
                for (Map.Entry<String, HostTensor> e : extras.entrySet()) {
                    if (!m.params().has(e.getKey())) throw new IllegalArgumentException(lora + ": tensor '" + e.getKey() + "' is not in the model");
                    try (var u = be.upload(e.getValue())) {
                        be.copy(u, m.params().get(e.getKey()));
                    }
                }
                PthWriter.write(out, m.toWeights(out.toString()), type, null);
                System.out.printf("merged %d adapters (r=%d, alpha=%s) and %d other tensors into %s (%s)%n",
                        set.adapters().size(), set.rank(), a, extras.size(), out, type);
            }
            return 0;
        }

        private static double alphaFromInfo(Path lora) throws IOException {
            String name = lora.getFileName().toString();
            Path info = lora.resolveSibling(name.replaceFirst("\\.(pth|pt|safetensors)$", "") + ".json");
            if (!Files.isRegularFile(info)) {
                throw new IllegalArgumentException("no " + info + " beside the adapter: give --lora-alpha");
            }
            JsonObject o = JsonParser.parseString(Files.readString(info)).getAsJsonObject();
            return o.get("alpha").getAsDouble();
        }
    }
}
