package ai.longrwkv.core.util;

import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.LogarithmicAxis;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.chart.plot.XYPlot;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Map;

/** PNG line charts (JFreeChart, headless), written atomically. */
public final class Charts {
    private Charts() { }

    static {
        System.setProperty("java.awt.headless", "true");
    }

    /** One line per entry of {@code series} (name -> points {x, y}). */
    public static void lines(Path png, String title, String xLabel, String yLabel, Map<String, List<double[]>> series, boolean logX) {
        XYSeriesCollection data = new XYSeriesCollection();
        series.forEach((name, points) -> {
            XYSeries s = new XYSeries(name);
            for (double[] p : points) if (Double.isFinite(p[1])) s.add(p[0], p[1]);
            data.addSeries(s);
        });
        JFreeChart chart = ChartFactory.createXYLineChart(title, xLabel, yLabel, data, PlotOrientation.VERTICAL, series.size() > 1, false, false);
        if (logX) {
            XYPlot plot = chart.getXYPlot();
            LogarithmicAxis axis = new LogarithmicAxis(xLabel);
            axis.setAllowNegativesFlag(false);
            plot.setDomainAxis(axis);
        }
        write(png, chart, 900, 500);
    }

    static void write(Path png, JFreeChart chart, int width, int height) {
        try {
            Path tmp = png.resolveSibling(png.getFileName() + ".tmp");
            ChartUtils.saveChartAsPNG(tmp.toFile(), chart, width, height);
            Files.move(tmp, png, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException("writing chart " + png + ": " + e.getMessage(), e);
        }
    }
}
