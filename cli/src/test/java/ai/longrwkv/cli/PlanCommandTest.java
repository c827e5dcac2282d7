package ai.longrwkv.cli;

import ai.longrwkv.core.model.ModelConfig;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.train.BpttMode;
import ai.longrwkv.core.train.MemoryPlan;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `longrwkv plan`, and the same plan stopping a training run that would not fit, with the advice that would. */
class PlanCommandTest {
    @TempDir
    static Path dir;
    static Path model, data;

    @BeforeAll
    static void makeModelAndData() {
        System.setProperty("longrwkv.noProgress", "true");
        model = dir.resolve("m.pth");
        data = dir.resolve("pk");
        TrainingCommandsTest.ok("init", "--layers", "2", "--embd", "32", "--head-size", "16", "--vocab", "256", "--seed", "3", "--out", model.toString());
        TrainingCommandsTest.ok("data", "synth", "passkey", "--tokenizer", "bytes", "--lengths", "256", "--count", "4", "--seed", "2", "--out", data.toString());
    }

    @Test
    void planPrintsEveryTermAndTheChunkLengthThatFits() {
        ModelConfig cfg = ModelConfig.forInit(32, 4096, 64, 65536);
        MemoryPlan.Spec spec = new MemoryPlan.Spec(cfg, MemoryPlan.Mode.LORA, DType.BF16, false, 131072, 4096, BpttMode.FULL, 16, 8);
        long cap = 28L << 30;
        int fits = MemoryPlan.largestFittingChunk(spec, cap);
        assertTrue(fits > 0 && fits < 4096, "some shorter chunk fits 28 GiB: " + fits);
        assertTrue(MemoryPlan.of(spec.withChunkLen(fits)).peakBytes() <= cap);
        for (int c = fits + 1; c <= 4096; c++) {
            if (131072 % c == 0) assertTrue(MemoryPlan.of(spec.withChunkLen(c)).peakBytes() > cap, "a larger divisor " + c + " also fits");
        }
        CliTestSupport.Run r = TrainingCommandsTest.ok("plan", "--shape", "L32-C4096-V65536", "--mode", "lora", "--ctx-len", "131072",
                "--chunk-len", "4096", "--precision", "bf16", "--device-memory", "28GiB");
        for (String term : new String[]{"weights", "trained parameters", "gradients", "AdamW moments", "states", "activations",
                "backward scratch", "logits slice", "bf16 workspace", "peak", "compute"}) {
            assertTrue(r.out().contains("  " + term + " "), term + " in\n" + r.out());
        }
        assertTrue(r.out().contains("does not fit: use --chunk-len " + fits + " "), r.out());
        assertTrue(r.out().contains("32 chunk-boundary states"), r.out());
        // where no chunk length of the run as given fits, the options that do
        CliTestSupport.Run cp = TrainingCommandsTest.ok("plan", "--shape", "L32-C4096-V65536", "--mode", "lora", "--ctx-len", "131072",
                "--chunk-len", "4096", "--precision", "bf16", "--device-memory", "24GiB");
        assertTrue(cp.out().contains("does not fit: use --grad-cp ("), cp.out());
        assertTrue(MemoryPlan.of(spec.withGradCp(true)).peakBytes() <= 24L << 30);
        CliTestSupport.Run big = TrainingCommandsTest.ok("plan", "--shape", "L32-C4096-V65536", "--mode", "state", "--ctx-len", "2048",
                "--chunk-len", "1024", "--dtype", "bf16", "--grad-cp", "--device-memory", "80GiB");
        assertTrue(big.out().contains("device memory         80.00 GiB   fits"), big.out());
        CliTestSupport.Run file = TrainingCommandsTest.ok("plan", "--model", model.toString(), "--ctx-len", "256", "--chunk-len", "64");
        assertTrue(file.out().contains("L2-C32"), file.out());
    }

    @Test
    void planOnSeveralGpusPrintsEachGpusShareAndTheCollectives() {
        String[] base = {"plan", "--shape", "L32-C4096-V65536", "--ctx-len", "131072", "--chunk-len", "4096", "--precision", "bf16", "--grad-cp",
                "--device-memory", "80GiB"};
        CliTestSupport.Run z2 = TrainingCommandsTest.ok(concat(base, "--devices", "8", "--zero", "2"));
        ModelConfig cfg = ModelConfig.forInit(32, 4096, 64, 65536);
        MemoryPlan.Spec spec = new MemoryPlan.Spec(cfg, MemoryPlan.Mode.FULL, DType.BF16, true, 131072, 4096, BpttMode.FULL, 16, 8, 8, 2, 1);
        MemoryPlan plan = MemoryPlan.of(spec);
        for (String term : new String[]{"fp32 master /8", "gradients /8", "AdamW moments /8", "gradient scratch", "bf16 working copy",
                "gradient reduce", "weight broadcast"}) {
            assertTrue(z2.out().contains("  " + term + " "), term + " in\n" + z2.out());
        }
        String peak = String.format("  %-20s %10s   ", "peak per GPU", MemoryPlan.human(plan.peakBytes()));
        assertTrue(z2.out().contains(peak), peak + " in\n" + z2.out());
        assertTrue(z2.out().contains("8 GPUs (8 per node x 1 node), ZeRO stage 2"), z2.out());
        assertTrue(z2.out().contains("device memory         80.00 GiB   fits"), z2.out());
        assertTrue(!z2.out().contains("collective time"), "no time without a stated bandwidth:\n" + z2.out());
        // a list of GPU ids counts as its length; two nodes of four are eight GPUs
        assertEquals(z2.out(), TrainingCommandsTest.ok(concat(base, "--devices", "0,1,2,3,4,5,6,7", "--zero", "2")).out());
        CliTestSupport.Run nodes = TrainingCommandsTest.ok(concat(base, "--devices", "4", "--nnodes", "2", "--zero", "2", "--bus-bandwidth", "100"));
        assertTrue(nodes.out().contains("8 GPUs (4 per node x 2 nodes)") && nodes.out().contains(peak), nodes.out());
        assertTrue(nodes.out().contains(String.format("  %-20s %10s   per step at an assumed bus bandwidth of 100 GB/s", "collective time",
                String.format("%.2f s", plan.collectiveSeconds(100e9)))), nodes.out());
        // stage 0 on 8 GPUs is one GPU's plan, and it says what would fit
        CliTestSupport.Run z0 = TrainingCommandsTest.ok(concat(base, "--devices", "8"));
        assertTrue(z0.out().contains("gradient all-reduce") && z0.out().contains("does not fit: use --zero 1 ("), z0.out());
        // one GPU: --zero has no effect, and full finetuning is told how many GPUs with --zero 2 it needs
        CliTestSupport.Run one = TrainingCommandsTest.ok(concat(base, "--zero", "2"));
        assertTrue(one.out().contains("(--zero 2 has no effect on one GPU"), one.out());
        assertTrue(one.out().contains("does not fit: nothing fits: the least this run needs is") && one.out().contains("; on 2 GPUs: use --devices 2 --zero 2 ("), one.out());
        assertTrue(one.out().contains("  cpu process "), one.out());
    }

    private static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void badPlanInputsAreOneLineErrors() {
        String e = UsageErrorsTest.usageError("plan", "--shape", "7B", "--ctx-len", "1024");
        assertTrue(e.contains("--shape must look like L32-C4096-V65536"), e);
        e = UsageErrorsTest.usageError("plan", "--shape", "L2-C64-V256", "--ctx-len", "1024", "--device-memory", "lots");
        assertTrue(e.contains("--device-memory must be a memory size"), e);
        e = UsageErrorsTest.usageError("plan", "--shape", "L2-C64-V256", "--ctx-len", "1024", "--precision", "fp8");
        assertTrue(e.contains("--precision must be fp32 or bf16, got 'fp8'"), e);
        e = UsageErrorsTest.usageError("plan", "--shape", "L2-C64-V256", "--ctx-len", "1024", "--zero", "3");
        assertTrue(e.contains("--zero must be from 0 to 2, got 3"), e);
        e = UsageErrorsTest.usageError("plan", "--shape", "L2-C64-V256", "--ctx-len", "1024", "--devices", "0,1,1");
        assertTrue(e.contains("--devices lists GPU 1 twice in '0,1,1'"), e);
        e = UsageErrorsTest.usageError("plan", "--shape", "L2-C64-V256", "--ctx-len", "1024", "--devices", "all");
        assertTrue(e.contains("--devices must be a count such as 8 or GPU ids such as 0,1,2,3, got 'all'"), e);
        e = UsageErrorsTest.usageError("plan", "--shape", "L2-C64-V256", "--ctx-len", "1024", "--nnodes", "0");
        assertTrue(e.contains("--nnodes must be from 1 to 65536, got 0"), e);
        e = UsageErrorsTest.usageError("plan", "--shape", "L2-C64-V256", "--ctx-len", "1024", "--bus-bandwidth", "-5");
        assertTrue(e.contains("--bus-bandwidth must be a positive number of GB/s"), e);
    }

    @Test
    void aRunThatDoesNotFitStopsBeforeAllocatingWithTheAdvice() throws Exception {
        Path out = dir.resolve("toosmall");
        CliTestSupport.Run r = CliTestSupport.run("finetune", "--model", model.toString(), "--data", data.toString(), "--ctx-len", "256",
                "--chunk-len", "256", "--steps", "1", "--out", out.toString(), "--device-memory", "1.2MiB");
        assertEquals(2, r.exitCode(), r.out() + r.err());
        String err = r.err().strip();
        assertEquals(1, err.lines().count(), err);
        assertTrue(err.contains("needs about") && err.contains("--device-memory is 1.2 MiB") && err.contains("--grad-cp"), err);
        assertTrue(!Files.exists(out.resolve("checkpoints")), "nothing was trained");
    }

    @Test
    void bf16AndGradCheckpointingTrainFromTheCommandLine() {
        Path st = dir.resolve("st-bf16");
        CliTestSupport.Run r = TrainingCommandsTest.ok("state-tune", "--model", model.toString(), "--data", data.toString(), "--ctx-len", "256",
                "--chunk-len", "64", "--steps", "2", "--precision", "bf16", "--grad-cp", "--out", st.toString());
        assertTrue(r.out().contains("bf16, grad-cp") && r.out().contains("peak tensor memory"), r.out());
        Path ft = dir.resolve("ft-bf16");
        r = TrainingCommandsTest.ok("finetune", "--model", model.toString(), "--data", data.toString(), "--ctx-len", "256",
                "--chunk-len", "64", "--steps", "2", "--precision", "bf16", "--out", ft.toString(), "--dtype", "fp32");
        assertTrue(Files.isRegularFile(ft.resolve("rwkv-final.pth")), r.out());
    }
}
