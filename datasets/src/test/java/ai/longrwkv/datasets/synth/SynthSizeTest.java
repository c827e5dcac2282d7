package ai.longrwkv.datasets.synth;

import ai.longrwkv.datasets.binidx.TokenDtype;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Campaign finding: `data synth --count 100000000` wrote for minutes toward a 64 GB file; now refused up front. */
class SynthSizeTest {
    @Test
    void anOutputLargerThanTheFreeSpaceOrTheFormatIsRefusedBeforeWriting(@TempDir Path dir) throws Exception {
        Path prefix = dir.resolve("huge");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> SynthDatasetWriter.checkOutputSize(prefix, List.of(131072, 131072), Integer.MAX_VALUE / 4, TokenDtype.UINT16));
        assertTrue(e.getMessage().contains("GB free: lower --count or --lengths"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> SynthDatasetWriter.checkOutputSize(prefix, List.of(10, 20, 30), Integer.MAX_VALUE, TokenDtype.UINT16));
        assertTrue(e.getMessage().contains("more than a dataset holds"), e.getMessage());
        SynthDatasetWriter.checkOutputSize(prefix, List.of(1024), 10, TokenDtype.UINT16);
        assertFalse(Files.exists(dir.resolve("huge.bin")));
    }
}
