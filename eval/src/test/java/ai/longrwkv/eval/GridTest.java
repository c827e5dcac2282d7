package ai.longrwkv.eval;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GridTest {
    @Test
    void lengthsAcceptPlainListsAndProgressions() {
        assertEquals(List.of(1024, 4096, 300), Grid.lengths("--lengths", "1k, 4k,300"));
        assertEquals(List.of(1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072), Grid.lengths("--lengths", "1k,2k,4k,...,128k"));
        assertEquals(List.of(1024, 2048, 3072, 4096), Grid.lengths("--lengths", "1k,2k,...,4k"));
    }

    @Test
    void depthsArePercent() {
        assertArrayEquals(new double[]{0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100}, Grid.depthsPercent("--depths", "0,10,...,100"), 1e-9);
        assertArrayEquals(new double[]{5, 50}, Grid.depthsPercent("--depths", "5,50"), 0);
    }

    @Test
    void badListsAreRefusedWithTheOption() {
        for (String bad : new String[]{"", "1k,,2k", "1k,...,4k", "1k,2k,...", "4k,2k,...,1k", "1k,2k,4k,...,100k", "x"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Grid.lengths("--lengths", bad), bad);
            assertTrue(e.getMessage().startsWith("--lengths"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> Grid.depthsPercent("--depths", "0,150"));
        assertThrows(IllegalArgumentException.class, () -> Grid.depthsPercent("--depths", "10,10"));
        assertThrows(IllegalArgumentException.class, () -> Grid.lengths("--lengths", "1k,1024"));
    }
}
