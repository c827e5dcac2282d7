package ai.longrwkv.core.io.pth;

import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.tensor.HostTensor;
import ai.longrwkv.core.train.StateFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** State files: the documented [head][value][key] layout as torch sees it, and the round trip back into LongRWKV. */
class StateFileTorchTest {
    static final ModelConfig CFG = new ModelConfig(2, 8, 2, 4, 32, 16, 1e-5);

    private static HostTensor[] states() {
        Random rnd = new Random(3);
        HostTensor[] s = new HostTensor[2];
        for (int l = 0; l < 2; l++) {
            s[l] = HostTensor.zeros(2, 4, 4);
            // exact in bf16, so values can be compared exactly after the round trip
            for (int i = 0; i < s[l].size(); i++) s[l].data()[i] = (float) (rnd.nextInt(200) - 100) / 8f;
        }
        return s;
    }

    @Test
    void roundTripsAndTransposesIntoTheFileLayout(@TempDir Path dir) {
        HostTensor[] s = states();
        Path file = dir.resolve("state.pth");
        StateFile.save(file, s, PthWriter.Dtype.BF16);
        HostTensor[] back = StateFile.load(file, CFG);
        for (int l = 0; l < 2; l++) assertArrayEquals(s[l].data(), back[l].data());
        HostTensor inFile = PthReader.readTensors(file).get("blocks.1.att.time_state");
        // file[h][j][i] == ours[h][i][j]
        assertEquals(s[1].data()[1 * 16 + 2 * 4 + 3], inFile.data()[1 * 16 + 3 * 4 + 2]);
        ModelConfig other = new ModelConfig(3, 8, 2, 4, 32, 16, 1e-5);
        var e = assertThrows(ai.longrwkv.core.io.ModelFormatException.class, () -> StateFile.load(file, other));
        assertTrue(e.getMessage().contains("blocks.2.att.time_state"), e.getMessage());
    }

    @Test
    void torchSeesValueKeyLayout(@TempDir Path dir) throws Exception {
        TorchPython.assumeAvailable();
        HostTensor[] s = states();
        Path file = dir.resolve("state.pth");
        StateFile.save(file, s, PthWriter.Dtype.BF16);
        // ours[l][h][i=key][j=value]: python checks file[h][j][i] against the values we tell it
        StringBuilder expect = new StringBuilder();
        for (int l = 0; l < 2; l++) {
            for (int h = 0; h < 2; h++) for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) {
                expect.append(l).append(' ').append(h).append(' ').append(i).append(' ').append(j).append(' ')
                        .append(s[l].data()[h * 16 + i * 4 + j]).append('\n');
            }
        }
        Path expectFile = dir.resolve("expect.txt");
        java.nio.file.Files.writeString(expectFile, expect);
        String out = TorchPython.run(dir, String.join("\n",
                "import sys, torch",
                "sd = torch.load(sys.argv[1], map_location='cpu', weights_only=True)",
                "assert sorted(sd.keys()) == ['blocks.0.att.time_state', 'blocks.1.att.time_state'], sd.keys()",
                "n = 0",
                "for line in open(sys.argv[2]):",
                "    l, h, i, j, v = line.split()",
                "    t = sd[f'blocks.{l}.att.time_state']",
                "    assert t.dtype == torch.bfloat16 and tuple(t.shape) == (2, 4, 4)",
                "    got = t[int(h), int(j), int(i)].float().item()",
                "    assert got == float(v), (l, h, i, j, got, v)",
                "    n += 1",
                "print('checked', n)"), file.toString(), expectFile.toString());
        assertTrue(out.contains("checked 64"), out);
    }
}
