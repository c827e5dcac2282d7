package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.cpu.CpuBackend;
import ai.longrwkv.core.model.ModelWeights;
import ai.longrwkv.core.model.Rwkv5Model;
import ai.longrwkv.core.testing.TestModels;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.function.Consumer;

import static ai.longrwkv.core.train.BpttTestSupport.TINY;
import static org.junit.jupiter.api.Assertions.*;

/** Issue 13 item 4: checkpoints carry checksums and a step that must agree; every kind of tampering is refused. */
class CheckpointIntegrityTest {
    static Backend be;
    static ModelWeights w;

    @BeforeAll
    static void setUp() {
        be = new CpuBackend();
        w = TestModels.random(TINY, 5);
    }

    @AfterAll
    static void tearDown() {
        be.close();
    }

    /** Trains {@code steps} steps of a run of {@code total}, saving a checkpoint after steps 1 and 2 (and at the end). */
    static Path makeRun(Path dir, long total) {
        Path ck = dir.resolve("checkpoints");
        try (Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps());
             Trainer t = new Trainer(m, TrainerTest.config(Trainer.Mode.FULL, total, 3e-3), TrainerTest.pool(3, 12), null, Set.of())) {
            for (int i = 0; i < 2; i++) {
                t.trainStep();
                t.saveCheckpoint(ck, "test");
            }
        }
        return ck;
    }

    static void resume(Path ck, long total) {
        try (Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps());
             Trainer t = new Trainer(m, TrainerTest.config(Trainer.Mode.FULL, total, 3e-3), TrainerTest.pool(3, 12), null, Set.of())) {
            t.resume(ck, "test");
            assertEquals(2, t.step());
        }
    }

    static String refused(Path ck, long total) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> resume(ck, total));
        assertFalse(e.getMessage().matches("(?s).*\\b(java|com)\\.[a-z]+\\.[A-Za-z.]*(Exception|Error).*"), e.getMessage());
        return e.getMessage();
    }

    static void edit(Path file, Consumer<JsonObject> change) throws IOException {
        JsonObject o = JsonParser.parseString(Files.readString(file)).getAsJsonObject();
        change.accept(o);
        Files.writeString(file, Trainer.GSON.toJson(o));
    }

    @Test
    void anUntouchedCheckpointResumes(@TempDir Path dir) {
        resume(makeRun(dir, 6), 6);
    }

    @Test
    void trainerJsonWithAnotherStepIsRefused(@TempDir Path dir) throws IOException {
        Path ck = makeRun(dir, 6);
        edit(ck.resolve("step-00000002/trainer.json"), o -> o.addProperty("step", 1000));
        assertTrue(refused(ck, 6).contains("does not match its own checksum"));
        // even with the checksum redone, the step disagrees with the directory and the safetensors files
        edit(ck.resolve("step-00000002/trainer.json"), o -> {
            o.remove("sha256");
            o.addProperty("sha256", ContentFingerprint.sha256(Trainer.GSON.toJson(o)));
        });
        assertTrue(refused(ck, 6).contains("says step 1000 but its directory is step-00000002"));
        // renamed to match, the tensors still say step 2
        Files.move(ck.resolve("step-00000002"), ck.resolve("step-00001000"));
        Files.writeString(ck.resolve("latest"), "step-00001000\n");
        String msg = refused(ck, 2000);
        assertTrue(msg.contains("is from step 2, trainer.json from step 1000"), msg);
    }

    @Test
    void momentsOrTrainablesFromAnotherStepAreRefused(@TempDir Path dir) throws IOException {
        Path ck = makeRun(dir, 6);
        for (String f : new String[]{"optimizer.safetensors", "trainable.safetensors"}) {
            Path two = ck.resolve("step-00000002/" + f), backup = dir.resolve(f + ".bak");
            Files.copy(two, backup);
            Files.copy(ck.resolve("step-00000001/" + f), two, StandardCopyOption.REPLACE_EXISTING);
            String msg = refused(ck, 6);
            assertTrue(msg.contains(f) && msg.contains("SHA-256"), msg);
            Files.copy(backup, two, StandardCopyOption.REPLACE_EXISTING);
        }
        resume(ck, 6);
    }

    @Test
    void aFlippedByteATruncationOrAMissingFileIsRefused(@TempDir Path dir) throws IOException {
        Path ck = makeRun(dir, 6);
        Path f = ck.resolve("step-00000002/optimizer.safetensors");
        byte[] good = Files.readAllBytes(f);
        byte[] flipped = good.clone();
        flipped[flipped.length - 3] ^= 0x10;
        Files.write(f, flipped);
        assertTrue(refused(ck, 6).contains("does not match its SHA-256"));
        Files.write(f, Arrays.copyOf(good, good.length - 100));
        assertTrue(refused(ck, 6).contains("truncated or replaced"));
        Files.delete(f);
        assertTrue(refused(ck, 6).contains("optimizer.safetensors is missing"));
        Files.write(f, good);
        resume(ck, 6);
    }

    @Test
    void emptyOrGarbageTrainerJsonAndLatestGiveCleanErrors(@TempDir Path dir) throws IOException {
        Path ck = makeRun(dir, 6);
        Path json = ck.resolve("step-00000002/trainer.json");
        String good = Files.readString(json);
        Files.writeString(json, "");
        assertTrue(refused(ck, 6).contains("trainer.json is empty"));
        Files.writeString(json, "{\"step\": 2, garbage");
        assertTrue(refused(ck, 6).contains("not valid JSON"));
        Files.write(json, new byte[]{(byte) 0xff, (byte) 0xfe, 0, 1});
        assertTrue(refused(ck, 6).contains("trainer.json"));
        Files.writeString(json, "[1, 2]");
        assertTrue(refused(ck, 6).contains("expected a JSON object"));
        Files.writeString(json, good);
        Files.writeString(ck.resolve("latest"), "");
        String msg = refused(ck, 6);
        assertTrue(msg.contains("latest is empty") && msg.contains("step-00000001, step-00000002"), msg);
        Files.writeString(ck.resolve("latest"), "../../etc\n");
        assertTrue(refused(ck, 6).contains("expected a checkpoint name"));
        Files.writeString(ck.resolve("latest"), "step-00000009\n");
        assertTrue(refused(ck, 6).contains("is not there"));
        Files.writeString(ck.resolve("latest"), "step-00000002\n");
        resume(ck, 6);
    }

    @Test
    void aRunCanBeExtendedButNotShortened(@TempDir Path dir) {
        Path ck = makeRun(dir, 6);
        resume(ck, 10);   // a larger --steps: the same config otherwise, the schedule recomputed for the new total
        assertTrue(refused(ck, 1).contains("beyond --steps 1"));
    }

    @Test
    void staleTemporaryCheckpointDirectoriesAreRemoved(@TempDir Path dir) throws IOException {
        Path ck = dir.resolve("checkpoints");
        Files.createDirectories(ck.resolve(".tmp-step-00000001-12345678901"));          // older naming, no process id
        Files.createDirectories(ck.resolve(".tmp-step-00000001-999999999-123456"));     // a process that is gone
        Path live = ck.resolve(".tmp-step-00000001-" + ProcessHandle.current().pid() + "-1");
        Files.createDirectories(live);
        Files.writeString(ck.resolve(".tmp-step-00000001-999999999-123456/trainer.json"), "{}");
        makeRun(dir, 6);
        List<String> left = new ArrayList<>();
        try (var s = Files.list(ck)) {
            s.forEach(p -> left.add(p.getFileName().toString()));
        }
        assertFalse(left.contains(".tmp-step-00000001-12345678901"), left.toString());
        assertFalse(left.contains(".tmp-step-00000001-999999999-123456"), left.toString());
        assertTrue(left.contains(live.getFileName().toString()), "a live writer's directory stays: " + left);
    }

    @Test
    void aPartialLastMetricsLineIsDroppedAndABadMiddleLineIsAnError(@TempDir Path dir) throws IOException {
        Path log = dir.resolve("metrics.jsonl");
        Files.writeString(log, "{\"step\":1,\"loss\":2.0}\n{\"step\":2,\"loss\":1.5}\n{\"step\":3,\"lo");
        TrainingJob.dropLinesAfter(log, 2, true);
        assertEquals("{\"step\":1,\"loss\":2.0}\n{\"step\":2,\"loss\":1.5}\n", Files.readString(log));
        Files.writeString(log, "{\"step\":1,\"loss\":2.0}\n{\"step\":2,\"loss\":1.5}");   // complete but no newline yet
        TrainingJob.dropLinesAfter(log, 2, true);
        assertEquals("{\"step\":1,\"loss\":2.0}\n{\"step\":2,\"loss\":1.5}\n", Files.readString(log, StandardCharsets.UTF_8));
        Files.writeString(log, "{\"step\":1}\ngarbage\n{\"step\":2}\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainingJob.dropLinesAfter(log, 2, true));
        assertTrue(e.getMessage().contains("metrics.jsonl line 2"), e.getMessage());
        Path txt = dir.resolve("train_log.txt");
        Files.writeString(txt, "1 2.0 7.3 0.001 2026-01-01T00:00 1\n2 1.5 4.4 0.001 2026-01-01T00:01 2\n3 1.");
        TrainingJob.dropLinesAfter(txt, 2, false);
        assertEquals(2, Files.readAllLines(txt).size());
    }

    @Test
    void sequencesWithoutATrainedTargetAreSkippedNotTrainedOnL2WrapAlone() {
        TokenSequence good = BpttTestSupport.randomSequence(12, TINY.vocabSize(), 7);
        TokenSequence none = new TokenSequence(good.tokens(), good.targets(), new float[12]);
        Trainer.SequenceSource mixed = new Trainer.SequenceSource() {
            @Override public TokenSequence sequence(long index) { return index % 2 == 0 ? none : good; }
            @Override public String fingerprint() { return "mixed"; }
        };
        Trainer.SequenceSource goodOnly = new Trainer.SequenceSource() {
            @Override public TokenSequence sequence(long index) { return good; }
            @Override public String fingerprint() { return "good"; }
        };
        Trainer.Config two = new Trainer.Config(Trainer.Mode.FULL, 4, BpttMode.FULL, 2, 1, 3, new LrSchedule(3e-3, 3e-4, 0, 3, LrSchedule.Kind.COSINE),
                0.0, 1.0, true, 0);
        Trainer.Config one = new Trainer.Config(Trainer.Mode.FULL, 4, BpttMode.FULL, 1, 1, 3, new LrSchedule(3e-3, 3e-4, 0, 3, LrSchedule.Kind.COSINE),
                0.0, 1.0, true, 0);
        double a, b;
        try (Rwkv5Model m1 = Rwkv5Model.load(be, w, TINY.groupNormEps()); Trainer t1 = new Trainer(m1, two, mixed, null, Set.of());
             Rwkv5Model m2 = Rwkv5Model.load(be, w, TINY.groupNormEps()); Trainer t2 = new Trainer(m2, one, goodOnly, null, Set.of())) {
            a = t1.trainStep().loss();
            b = t2.trainStep().loss();
            assertEquals(b, a, 0.0, "the untrained sequence contributes nothing, not a zero loss to the mean");
            assertArrayEquals(be.download(m2.params().get("blocks.0.att.key.weight")).data(),
                    be.download(m1.params().get("blocks.0.att.key.weight")).data(), "same update as without it");
        }
        Trainer.SequenceSource nothing = new Trainer.SequenceSource() {
            @Override public TokenSequence sequence(long index) { return none; }
            @Override public String fingerprint() { return "none"; }
        };
        try (Rwkv5Model m = Rwkv5Model.load(be, w, TINY.groupNormEps()); Trainer t = new Trainer(m, one, nothing, null, Set.of())) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, t::trainStep);
            assertTrue(e.getMessage().contains("has a trained target"), e.getMessage());
        }
    }

    @Test
    void contentFingerprintIgnoresThePathSpelling(@TempDir Path dir) throws IOException {
        byte[] data = new byte[3 << 20];
        new java.util.Random(1).nextBytes(data);
        Path a = Files.write(dir.resolve("a.bin"), data);
        Path link = Files.createSymbolicLink(dir.resolve("link.bin"), a);
        assertEquals(ContentFingerprint.of(a), ContentFingerprint.of(link));
        assertEquals(ContentFingerprint.of(a), ContentFingerprint.of(dir.resolve("./sub/../a.bin").normalize()));
        data[data.length - 1] ^= 1;
        assertNotEquals(ContentFingerprint.of(a), ContentFingerprint.of(Files.write(dir.resolve("b.bin"), data)));
    }
}
