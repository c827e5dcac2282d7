package ai.longrwkv.datasets.synth;

import java.util.SplittableRandom;

/** Adjective-noun keys for RULER-style needles ("rare-falcon"): 65 x 63 = 4095 keys. */
final class Words {
    private Words() { }

    static final String[] ADJECTIVES = ("able bright calm clever cold crisp curious daring eager early elegant empty fancy "
            + "fierce gentle giant golden grand happy hidden honest humble jolly kind lively lonely loud lucky magic mighty "
            + "modern narrow noble odd orange patient plain polite proud quick quiet rapid rare red rich rough royal "
            + "shiny silent silver simple sleepy slow smooth solid steady sunny swift tall tender tidy vivid warm wild wise").split(" ");
    static final String[] NOUNS = ("anchor apple arrow badger basket beacon bottle bridge candle canyon castle cedar "
            + "cloud comet compass coral crystal desert dolphin dragon engine falcon feather forest fountain garden glacier "
            + "hammer harbor island jacket kettle ladder lantern lemon meadow mirror monkey mountain needle ocean orchard "
            + "otter palace pencil pepper planet pocket river rocket saddle shadow signal spider statue thunder tiger "
            + "tunnel valley violin wagon whistle window").split(" ");

    static String key(SplittableRandom rng) {
        return ADJECTIVES[rng.nextInt(ADJECTIVES.length)] + "-" + NOUNS[rng.nextInt(NOUNS.length)];
    }
}
