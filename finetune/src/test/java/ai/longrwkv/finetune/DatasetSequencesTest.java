package ai.longrwkv.finetune;

import ai.longrwkv.core.train.TokenSequence;
import ai.longrwkv.datasets.binidx.BinIdxFormat;
import ai.longrwkv.datasets.binidx.BinIdxWriter;
import ai.longrwkv.datasets.binidx.DatasetMeta;
import ai.longrwkv.datasets.binidx.TokenDtype;
import ai.longrwkv.datasets.pack.BoundaryMode;
import ai.longrwkv.datasets.pack.LengthMix;
import ai.longrwkv.datasets.pack.Packer;
import com.google.gson.JsonObject;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** Issue 13 items 1, 3, 4 and 8 on the data side of training. */
class DatasetSequencesTest {
    @TempDir
    Path dir;

    /** Documents of the given lengths; document d's tokens are 10*d + position (mod 200), trained where {@code trained[d]}. */
    private Path dataset(String name, String kind, int[] lengths, boolean[] trained) throws IOException {
        Path p = dir.resolve(name);
        try (BinIdxWriter w = new BinIdxWriter(BinIdxFormat.bin(p), BinIdxFormat.idx(p), BinIdxFormat.mask(p), TokenDtype.UINT16)) {
            for (int d = 0; d < lengths.length; d++) {
                int[] t = new int[lengths[d]];
                byte[] f = new byte[lengths[d]];
                for (int i = 0; i < t.length; i++) {
                    t[i] = (10 * d + i) % 200 + 1;
                    f[i] = (byte) (trained[d] ? 1 : 0);
                }
                t[t.length - 1] = 0;
                w.add(t, f);
            }
            w.finish();
        }
        if (kind != null) {
            JsonObject m = new JsonObject();
            m.addProperty("kind", kind);
            m.addProperty("tokenizer", "bytes");
            DatasetMeta.write(BinIdxFormat.meta(p), m);
        }
        return p;
    }

    private static String refused(Runnable r) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        return e.getMessage();
    }

    @Test
    void aDatasetWithNoTrainedTokenIsRefused() throws IOException {
        Path p = dataset("none", "documents", new int[]{40, 50}, new boolean[]{false, false});
        assertTrue(refused(() -> DatasetSequences.open(p, 16, 1, null).close()).contains("no token is trained"));
        assertTrue(refused(() -> DatasetSequences.open(p, 64, 1, DatasetSequences.Sampling.DOCUMENTS).close()).contains("no token is trained"));
    }

    @Test
    void documentsWithoutATrainedTargetAreSkippedAndWindowsWithoutOneRedrawn() throws IOException {
        boolean[] trained = {true, false, false, true, false};
        Path p = dataset("some", "synthetic", new int[]{30, 30, 30, 30, 1}, trained);
        Set<Integer> firstTokens = new HashSet<>();
        try (DatasetSequences s = DatasetSequences.open(p, 32, 1, null)) {
            for (int i = 0; i < 20; i++) {
                TokenSequence t = s.sequence(i);
                assertTrue(t.lossPositions() > 0, "sequence " + i);
                firstTokens.add(t.tokens()[0]);
            }
        }
        assertEquals(Set.of(1, 31), firstTokens, "only documents 0 and 3, in turn");
        // sparse trained tokens in the flat stream: every window still has a target
        Path q = dataset("sparse", "documents", new int[]{200, 200, 8, 200, 200}, new boolean[]{false, false, true, false, false});
        try (DatasetSequences s = DatasetSequences.open(q, 16, 3, null)) {
            for (int i = 0; i < 30; i++) assertTrue(s.sequence(i).lossPositions() > 0, "window " + i);
        }
    }

    @Test
    void packedOrSyntheticDataWithoutItsMetadataIsRefused() throws IOException {
        Path src = dataset("src", "documents", new int[]{20, 30, 25}, new boolean[]{true, true, true});
        Path packed = dir.resolve("packed");
        Packer.pack(src, packed, new Packer.Options(64, LengthMix.parse(null, 64), BoundaryMode.RESET, 1, false));
        DatasetSequences.open(packed, 64, 1, null).close();
        Files.delete(BinIdxFormat.meta(packed));
        String msg = refused(() -> DatasetSequences.open(packed, 64, 1, null).close());
        assertTrue(msg.contains(".segments is there but") && msg.contains("meta.json is missing"), msg);
        assertTrue(refused(() -> DatasetSequences.open(packed, 64, 1, DatasetSequences.Sampling.DOCUMENTS).close()).contains("meta.json is missing"));
        Files.createDirectory(BinIdxFormat.meta(packed));
        assertTrue(refused(() -> DatasetSequences.open(packed, 64, 1, null).close()).contains("is a directory"));

        Files.delete(BinIdxFormat.meta(packed));
        Packer.pack(src, packed, new Packer.Options(64, LengthMix.parse(null, 64), BoundaryMode.RESET, 1, false));
        Files.delete(BinIdxFormat.mask(packed));
        assertTrue(refused(() -> DatasetSequences.open(packed, 64, 1, null).close()).contains("padding token would be trained"));

        Path synth = dataset("synth", null, new int[]{20, 30}, new boolean[]{true, true});
        Files.writeString(BinIdxFormat.sibling(synth, ".samples.jsonl"), "{}\n");
        assertTrue(refused(() -> DatasetSequences.open(synth, 32, 1, null).close()).contains("kind is unknown"));
        DatasetSequences.open(synth, 32, 1, DatasetSequences.Sampling.DOCUMENTS).close();   // the user decided
        JsonObject m = new JsonObject();
        m.addProperty("kind", "pakced");
        DatasetMeta.write(BinIdxFormat.meta(synth), m);
        assertTrue(refused(() -> DatasetSequences.open(synth, 32, 1, null).close()).contains("kind 'pakced'"));
    }

    @Test
    void aTokenOutsideTheVocabularyNamesTheFileTheDocumentAndThePosition() throws IOException {
        Path p = dataset("v", "documents", new int[]{20, 30, 25}, new boolean[]{true, true, true});
        // the whole stream is checked once before training: a bad token is found whichever sequences a run would sample
        try (DatasetSequences s = DatasetSequences.open(p, 64, 1, DatasetSequences.Sampling.DOCUMENTS)) {
            String msg = refused(() -> s.requireVocabulary(25));   // document 0 has tokens 1..19; documents 1 and 2 go above 24
            assertTrue(msg.startsWith(BinIdxFormat.bin(p) + ": document "), msg);
            assertTrue(msg.matches(".*document 1 has token 25 at position 14, outside the model's vocabulary 0..24 \\(found before training.*"), msg);
        }
        try (DatasetSequences s = DatasetSequences.open(p, 16, 1, DatasetSequences.Sampling.WINDOWS)) {
            String msg = refused(() -> s.requireVocabulary(5));
            assertTrue(msg.contains(".bin: document 0 has token 5 at position 4"), msg);
        }
        try (DatasetSequences s = DatasetSequences.open(p, 16, 1, DatasetSequences.Sampling.WINDOWS)) {
            s.requireVocabulary(201);   // every token fits (ids are 0..200)
            s.sequence(0);
        }
    }

    @Test
    void theFingerprintIsTheContentNotThePathSpelling() throws IOException {
        Path p = dataset("f", "documents", new int[]{20, 30, 25}, new boolean[]{true, true, true});
        Path link = Files.createSymbolicLink(dir.resolve("linkdir"), dir);
        String a, b, c;
        try (DatasetSequences s = DatasetSequences.open(p, 16, 1, null)) { a = s.fingerprint(); }
        try (DatasetSequences s = DatasetSequences.open(link.resolve("f"), 16, 1, null)) { b = s.fingerprint(); }
        assertEquals(a, b);
        Path other = dataset("g", "documents", new int[]{20, 30, 26}, new boolean[]{true, true, true});
        try (DatasetSequences s = DatasetSequences.open(other, 16, 1, null)) { c = s.fingerprint(); }
        assertNotEquals(a, c);
    }

    @Test
    void trainingOptionsOutOfRangeAreRefusedNamingOptionValueAndRange() {
        Object[][] cases = {
                {"microBatch", 0, "--micro-batch must be 1..1048576, got 0"},
                {"gradAccum", 0, "--grad-accum must be 1..1048576, got 0"},
                {"warmup", -1L, "--warmup must be >= 0 steps, got -1"},
                {"gradClip", -1.0, "--grad-clip must be >= 0, got -1.0"},
                {"gradClip", Double.NaN, "--grad-clip must be a finite number >= 0, got NaN"},
                {"weightDecay", -1.0, "--weight-decay must be >= 0, got -1.0"},
                {"weightDecay", Double.NaN, "--weight-decay must be a finite number >= 0, got NaN"},
                {"saveEvery", -1L, "--save-every must be >= 0 steps"},
                {"skipNonFinite", -3, "--skip-nonfinite must be >= 0, got -3"},
                {"gnEps", Double.POSITIVE_INFINITY, "--gn-eps must be a finite number > 0, got Infinity"},
                {"steps", 0L, "--steps must be >= 1, got 0"},
                {"ctxLen", 0, "--ctx-len must be >= 1, got 0"},
        };
        for (Object[] c : cases) {
            TrainingOptions o = new TrainingOptions();
            o.ctxLen = 64;
            o.chunkLen = 32;
            o.bptt = "full";
            o.schedule = "cosine";
            o.microBatch = 1;
            o.gradAccum = 1;
            o.gradClip = 1;
            o.steps = 2L;
            try {
                var f = TrainingOptions.class.getField((String) c[0]);
                f.set(o, c[1]);
            } catch (ReflectiveOperationException e) {
                throw new AssertionError(e);
            }
            if (c[0].equals("ctxLen")) o.chunkLen = 1;
            String msg = refused(o::validate);
            assertTrue(msg.startsWith((String) c[2]), c[0] + ": " + msg);
        }
        assertTrue(refused(() -> TrainingOptions.learningRates(1e-4, 1e-3)).contains("--lr-final 0.001 is above --lr 1.0E-4"));
        assertTrue(refused(() -> TrainingOptions.learningRates(Double.POSITIVE_INFINITY, 0)).contains("--lr must be a finite number > 0"));
        assertTrue(refused(() -> TrainingOptions.learningRates(1e-4, Double.NaN)).contains("--lr-final must be a finite number >= 0, got NaN"));
        assertTrue(refused(() -> TrainingRun.initConfig("1,0")).contains("the embedding size C must be 1..65536, got 0"));
        assertTrue(refused(() -> TrainingRun.initConfig("0,64")).contains("layers must be 1..4096"));
        assertTrue(refused(() -> TrainingRun.initConfig("2,100")).contains("multiple of the head size 64"));
        assertTrue(refused(() -> TrainingRun.initConfig("2,64,1")).contains("vocabulary must be 2.."));
        String mem = refused(() -> TrainingRun.loadOrInit(null, "1024,16384,65536", 1));
        assertTrue(mem.contains("needs about") && mem.contains("GB"), mem);
        assertEquals(Arrays.asList(2, 32), Arrays.asList(TrainingRun.initConfig("2,32,256").nLayer(), TrainingRun.initConfig("2,32,256").nEmbd()));
    }
}
