package ai.longrwkv.finetune;

import ai.longrwkv.core.train.TokenSequence;
import ai.longrwkv.datasets.binidx.BinIdxFormat;
import ai.longrwkv.datasets.binidx.BinIdxWriter;
import ai.longrwkv.datasets.binidx.DatasetMeta;
import ai.longrwkv.datasets.binidx.TokenDtype;
import com.google.gson.JsonObject;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** --ctx-len schedules (length curriculum, mixed lengths) and --sampling stream. */
class LengthScheduleTest {
    @TempDir
    Path dir;

    @Test
    void phasesByStepAndMixedLengths() {
        LengthSchedule s = LengthSchedule.parse("64:3, 32/128:2, 256");
        assertEquals(256, s.longest());
        assertTrue(s.varies());
        // two sequences per step: indices 0..5 are steps 0..2 (phase 0), 6..9 steps 3..4 (phase 1), then phase 2 for ever
        for (int i = 0; i < 6; i++) assertEquals(64, s.lengthOf(i, 2, 1));
        Set<Integer> mixed = new HashSet<>();
        for (int i = 6; i < 10; i++) mixed.add(s.lengthOf(i, 2, 1));
        for (int i = 6; i < 10; i++) assertEquals(128, s.limitOf(i, 2));
        assertTrue(Set.of(32, 128).containsAll(mixed), mixed.toString());
        Set<Integer> many = new HashSet<>();
        LengthSchedule wide = LengthSchedule.parse("32/128");
        for (int i = 0; i < 50; i++) many.add(wide.lengthOf(i, 1, 7));
        assertEquals(Set.of(32, 128), many, "a mixed phase draws both lengths");
        assertEquals(256, s.lengthOf(10, 2, 1));
        assertEquals(256, s.lengthOf(1_000_000, 2, 1));
        assertFalse(LengthSchedule.parse("2k").varies());
        assertEquals(2048, LengthSchedule.parse("2k").longest());
        assertTrue(assertThrows(IllegalArgumentException.class, () -> LengthSchedule.parse("64,128")).getMessage()
                .contains("phase '64' needs its number of steps"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> LengthSchedule.parse("64:x,128")).getMessage()
                .contains("expected a whole number"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> LengthSchedule.parse("64:0,128")).getMessage()
                .contains("at least 1 step"));
    }

    /** One document per length in `lengths`, each token = its document's index + 1 (so a sequence says where it came from). */
    private Path dataset(String name, String kind, int[] lengths) throws IOException {
        Path p = dir.resolve(name);
        try (BinIdxWriter w = new BinIdxWriter(BinIdxFormat.bin(p), BinIdxFormat.idx(p), BinIdxFormat.mask(p), TokenDtype.UINT16)) {
            for (int d = 0; d < lengths.length; d++) {
                int[] t = new int[lengths[d]];
                byte[] f = new byte[lengths[d]];
                for (int i = 0; i < t.length; i++) {
                    t[i] = kind.equals("documents") ? (i % 250) + 1 : d + 1;
                    f[i] = 1;
                }
                w.add(t, f);
            }
            w.finish();
        }
        JsonObject m = new JsonObject();
        m.addProperty("kind", kind);
        m.addProperty("tokenizer", "bytes");
        DatasetMeta.write(BinIdxFormat.meta(p), m);
        return p;
    }

    @Test
    void documentsSamplingDrawsOnlyDocumentsThatFitThePhase() throws IOException {
        int[] lengths = new int[40];
        for (int d = 0; d < lengths.length; d++) lengths[d] = d % 2 == 0 ? 17 : 65;   // 16 or 64 predictions
        Path p = dataset("mix", "synthetic", lengths);
        try (DatasetSequences ds = DatasetSequences.open(p, LengthSchedule.parse("16:5,64"), 2, false, 1, null)) {
            for (int i = 0; i < 10; i++) assertEquals(17, ds.sequence(i).length(), "phase 1 (steps 1..5): short documents only, index " + i);
            Set<Integer> later = new HashSet<>();
            for (int i = 10; i < 60; i++) later.add(ds.sequence(i).length());
            assertEquals(Set.of(17, 64), later, "then both (a document of ctx-len + 1 tokens gives ctx-len inputs and a last target)");
        }
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DatasetSequences.open(p, LengthSchedule.parse("8:5,64"), 1, false, 1, null))
                .getMessage().contains("no document fits the --ctx-len 8:5,64 phase of length 8"));
    }

    @Test
    void streamSamplingCutsConsecutiveSlicesOfThePhaseLength() throws IOException {
        Path p = dataset("text", "documents", new int[]{1000, 1000});
        try (DatasetSequences ds = DatasetSequences.open(p, LengthSchedule.parse("8:2,16"), 1, false, 1, DatasetSequences.Sampling.STREAM)) {
            TokenSequence a = ds.sequence(0), b = ds.sequence(1), c = ds.sequence(2);
            assertEquals(8, a.length());
            assertEquals(16, c.length());
            // each slice continues where the one before stopped: its first token is the one before's last target
            assertEquals(a.targets()[7], b.tokens()[0]);
            assertEquals(b.targets()[7], c.tokens()[0]);
            assertEquals(a.tokens()[1], a.targets()[0]);
            assertEquals(1, a.tokens()[0]);
            assertEquals(9, b.tokens()[0]);
            assertEquals(17, c.tokens()[0]);
            assertEquals(33, ds.sequence(3).tokens()[0]);
        }
        assertTrue(assertThrows(IllegalArgumentException.class,
                () -> DatasetSequences.open(p, LengthSchedule.parse("8/16"), 1, false, 1, DatasetSequences.Sampling.STREAM)).getMessage()
                .contains("mixes lengths in a phase"));
    }

    @Test
    void longDocumentsAreTrainedAsConsecutivePiecesWhenTheStateIsCarried() throws IOException {
        // documents of 33 and 17 tokens with ctx-len 16: 2 pieces and 1
        Path p = dataset("long", "synthetic", new int[]{33, 17});
        assertTrue(assertThrows(IllegalArgumentException.class, () -> DatasetSequences.open(p, LengthSchedule.parse("16"), 1, false, 1, null))
                .getMessage().contains("more than --ctx-len 16"), "without pieces a long document is refused");
        try (DatasetSequences ds = DatasetSequences.open(p, LengthSchedule.parse("16"), 1, true, 1, null)) {
            for (int i = 0; i < 6; i++) assertEquals(16, ds.sequence(i).length(), "32 predictions = two pieces of 16; 16 = one");
            // the 33-token document is made of tokens 1; the 17-token one of tokens 2
            int firstOfLong = -1;
            for (int i = 0; i < 3; i++) {
                if (ds.sequence(i).tokens()[0] == 1) { firstOfLong = i; break; }
            }
            assertTrue(firstOfLong >= 0 && firstOfLong < 2);
            assertFalse(ds.continuesPrevious(firstOfLong));
            assertTrue(ds.continuesPrevious(firstOfLong + 1), "the second piece continues the first");
            assertEquals(1, ds.sequence(firstOfLong + 1).tokens()[0]);
            assertEquals(1, ds.sequence(firstOfLong + 1).targets()[15], "the last piece ends with the document's last token as target");
            assertFalse(ds.continuesPrevious(firstOfLong == 0 ? 2 : 0), "the short document is a new one");
            assertEquals(1, ds.sequence(firstOfLong).targets()[15], "a first piece's last target is the next piece's first token");
        }
    }
}
