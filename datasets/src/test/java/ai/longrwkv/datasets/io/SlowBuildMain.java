package ai.longrwkv.datasets.io;

import ai.longrwkv.core.tokenizer.ByteTokenizer;
import ai.longrwkv.core.tokenizer.Tokenizer;
import ai.longrwkv.datasets.build.DatasetBuilder;
import ai.longrwkv.datasets.build.InputFormat;

import java.nio.file.Path;
import java.util.List;

/** Run in a child JVM by AtomicOutputTest: a build slow enough (a few ms per record) to be killed in the middle. */
public final class SlowBuildMain {
    private SlowBuildMain() { }

    public static void main(String[] args) {
        Tokenizer slow = new Tokenizer() {
            @Override
            public int[] encode(byte[] utf8) {
                try {
                    Thread.sleep(3);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return ByteTokenizer.INSTANCE.encode(utf8);
            }

            @Override public byte[] decode(int[] ids) { return ByteTokenizer.INSTANCE.decode(ids); }
            @Override public int vocabSize() { return 256; }
            @Override public String name() { return "slow-bytes"; }
        };
        new DatasetBuilder(new DatasetBuilder.Options(InputFormat.TEXT, slow, "bytes", false, false, 1, null))
                .build(List.of(Path.of(args[0])), Path.of(args[1]));
    }
}
