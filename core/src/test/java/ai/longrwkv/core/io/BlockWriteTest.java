package ai.longrwkv.core.io;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.io.pth.PthWriter;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * Checkpoints and results are written from backend tensors a block at a time ({@link ModelWeights#ofTensor}); the
 * files must be byte for byte those written from whole host copies, for tensors larger than one block, in fp32 and bf16.
 */
class BlockWriteTest {
    @TempDir
    Path tmp;

    @Test
    void streamedFilesEqualFilesWrittenFromHostCopies() throws Exception {
        Random rnd = new Random(7);
        try (CpuBackend be = new CpuBackend()) {
            HostTensor big = HostTensor.zeros(3, ModelWeights.UPLOAD_BLOCK_VALUES / 2 + 11);   // 1.5 blocks
            for (int i = 0; i < big.size(); i++) big.data()[i] = (float) rnd.nextGaussian();
            big.data()[5] = Float.intBitsToFloat(0x7fc01234);   // a NaN payload survives either way
            HostTensor small = new HostTensor(new int[]{2, 2}, new float[]{1, -2, 3.5f, 0});
            try (Tensor a = be.upload(big); Tensor b = be.upload(big, DType.BF16); Tensor c = be.upload(small)) {
                Map<String, ModelWeights.Entry> streamed = new LinkedHashMap<>();
                Map<String, HostTensor> copies = new LinkedHashMap<>();
                for (Map.Entry<String, Tensor> e : Map.of("a", a, "b", b, "c", c).entrySet()) {
                    streamed.put(e.getKey(), ModelWeights.ofTensor(be, e.getValue()));
                    copies.put(e.getKey(), be.download(e.getValue()));
                }
                Safetensors.writeEntries(tmp.resolve("s.safetensors"), streamed, Map.of("step", "3"));
                Safetensors.write(tmp.resolve("h.safetensors"), copies, Map.of("step", "3"));
                assertArrayEquals(Files.readAllBytes(tmp.resolve("h.safetensors")), Files.readAllBytes(tmp.resolve("s.safetensors")));
                for (PthWriter.Dtype d : PthWriter.Dtype.values()) {
                    PthWriter.write(tmp.resolve("s.pth"), ModelWeights.lazy(streamed, "streamed", Double.NaN), d, null);
                    PthWriter.write(tmp.resolve("h.pth"), copies, d);
                    assertArrayEquals(Files.readAllBytes(tmp.resolve("h.pth")), Files.readAllBytes(tmp.resolve("s.pth")), d.name());
                }
            }
        }
    }
}
