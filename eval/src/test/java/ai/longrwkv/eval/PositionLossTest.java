package ai.longrwkv.eval;

import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.model.RwkvState;
import ai.longrwkv.datasets.binidx.BinIdxDataset;
import ai.longrwkv.datasets.binidx.BinIdxFormat;
import ai.longrwkv.datasets.binidx.BinIdxWriter;
import ai.longrwkv.datasets.binidx.TokenDtype;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PositionLossTest {
    @Test
    void bucketsAreLogSpacedAndCoverEveryPosition() {
        assertArrayEquals(new int[]{1, 2, 4, 8, 16, 17}, PositionLoss.bucketEdges(16, 1));
        int[] e = PositionLoss.bucketEdges(131072, 2);
        assertEquals(1, e[0]);
        assertEquals(131073, e[e.length - 1]);
        for (int i = 1; i < e.length; i++) assertTrue(e[i] > e[i - 1] && e[i] <= 2 * e[i - 1]);
        assertArrayEquals(new int[]{1, 2, 4, 5, 8, 11, 16, 22, 32}, java.util.Arrays.copyOf(e, 9), "floor(2^(k/2)), repeats dropped");
        assertEquals(34, e.length, "two buckets per doubling up to 2^17 = 131072, then the end");
    }

    static Path writeDocs(Path dir, int... lengths) {
        Path prefix = dir.resolve("held-out");
        SplittableRandom r = new SplittableRandom(3);
        try (BinIdxWriter w = new BinIdxWriter(BinIdxFormat.bin(prefix), BinIdxFormat.idx(prefix), null, TokenDtype.UINT16)) {
            for (int n : lengths) {
                int[] doc = new int[n];
                for (int i = 0; i < n; i++) doc[i] = 1 + r.nextInt(255);
                w.add(doc, null);
            }
            w.finish();
        }
        return prefix;
    }

    @Test
    void perPositionLossMatchesAOneShotForwardAndIsAveragedOverDocuments(@TempDir Path dir) throws Exception {
        Path prefix = writeDocs(dir, 50, 130, 20, 129);
        ModelConfig cfg = TinyModels.config();
        try (BinIdxDataset data = BinIdxDataset.open(prefix); CpuBackend be = new CpuBackend();
             Rwkv5Model m = Rwkv5Model.load(be, TinyModels.withMemory(cfg, 3), cfg.groupNormEps()); RwkvState s0 = m.newState()) {
            List<int[]> docs = PositionLoss.documents(data, 128, 10);
            assertEquals(2, docs.size(), "only documents of at least ctx-len + 1 tokens");
            double[] perPos = PositionLoss.perPosition(m, s0, docs, 128, 24, null);
            // reference: one forward per document, loss of each position, averaged
            double[] expected = new double[128];
            for (int[] doc : docs) {
                try (RwkvState s = m.newState(); Rwkv5Model.Activations a = m.forward(java.util.Arrays.copyOf(doc, 128), s, false, true)) {
                    float[] l = be.download(a.logits()).data();
                    for (int p = 0; p < 128; p++) expected[p] += RetrievalEval.nll(l, p * 256, 256, doc[p + 1]) / docs.size();
                }
            }
            assertArrayEquals(expected, perPos, 1e-4);

            int[] edges = PositionLoss.bucketEdges(128, 1);
            double[] buckets = PositionLoss.bucketMeans(perPos, edges);
            assertEquals(perPos[0], buckets[0], 1e-12, "bucket [1, 2) is position 1");
            assertEquals((perPos[1] + perPos[2]) / 2, buckets[1], 1e-12);
            Map<String, double[]> curves = new LinkedHashMap<>();
            curves.put("tiny", buckets);
            curves.put("tiny, again", buckets);
            PositionLoss.write(dir.resolve("out"), edges, curves, docs.size(), null);
            List<String> csv = Files.readAllLines(dir.resolve("out").resolve("position-loss.csv"));
            assertEquals("bucket_start,bucket_end,positions,tiny,\"tiny, again\"", csv.get(0));
            assertEquals(edges.length, csv.size());
            assertTrue(Files.size(dir.resolve("out").resolve("position-loss.png")) > 1000);
        }
    }

    @Test
    void aDatasetWithoutLongDocumentsIsRefused(@TempDir Path dir) {
        Path prefix = writeDocs(dir, 50, 60);
        try (BinIdxDataset data = BinIdxDataset.open(prefix)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PositionLoss.documents(data, 128, 4));
            assertTrue(e.getMessage().contains("the longest has 60"), e.getMessage());
        }
    }
}
