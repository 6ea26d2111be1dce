package io.github.llama2j.tornado;

import io.github.llama2j.model.Configuration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.enums.TornadoVMBackendType;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The device the engines use without {@code --device} ({@link DeviceSelection#preferred}) and what TornadoVM 5.2's PTX
 * backend can index in a local array ({@link KernelHelpers#localLength}): rules, not devices, so they run anywhere.
 */
@Tag("tornado")
class DeviceSelectionTest {
    private static DeviceSelection.Candidate c(TornadoVMBackendType b, String type, String name, boolean def) {
        return new DeviceSelection.Candidate(b, type, name, def);
    }

    @Test
    void anOpenClGpuThatPtxAlsoOffersRunsOnPtx() {
        var ocl = TornadoVMBackendType.OPENCL;
        var ptx = TornadoVMBackendType.PTX;
        // an NVIDIA machine with both backends: OpenCL's GPU is TornadoVM's default, PTX has the same GPU
        assertEquals(2, DeviceSelection.preferredIndex(List.of(c(ocl, "GPU", "NVIDIA H200", true), c(ocl, "CPU", "Xeon", false),
                c(ptx, "GPU", "NVIDIA H200", false))));
        // PTX only lists another GPU: the default stays
        assertEquals(0, DeviceSelection.preferredIndex(List.of(c(ocl, "GPU", "NVIDIA H200", true), c(ptx, "GPU", "NVIDIA H100", false))));
        // the default is a CPU (PoCL): it stays, whatever PTX offers
        assertEquals(0, DeviceSelection.preferredIndex(List.of(c(ocl, "CPU", "pthread", true), c(ptx, "GPU", "pthread", false))));
        // OpenCL only, or PTX already the default
        assertEquals(1, DeviceSelection.preferredIndex(List.of(c(ocl, "CPU", "x", false), c(ocl, "GPU", "NVIDIA H200", true))));
        assertEquals(0, DeviceSelection.preferredIndex(List.of(c(ptx, "GPU", "NVIDIA H200", true), c(ocl, "GPU", "NVIDIA H200", false))));
        assertEquals(-1, DeviceSelection.preferredIndex(List.of(c(ocl, "GPU", "NVIDIA H200", false))));
    }

    /**
     * PTX addresses entry i of a local array at byte 16 i + 64: a 1,024-float array holds 252 entries there (what
     * compute-sanitizer showed on an H200: threads 252-255 wrote outside), a 4,096-int one 1,020 (the Q8 chunk of 1,024
     * ints that failed with CUDA error 700). Every array the kernels declare holds what they index.
     */
    @Test
    void localArraysHoldWhatTheKernelsIndexOnPtx() {
        assertEquals(252, KernelHelpers.ptxUsable(1024));
        assertEquals(1020, KernelHelpers.ptxUsable(4096));
        for (int used : new int[]{1, 7, 128, 256, 1024, 4096}) {
            assertTrue(KernelHelpers.ptxUsable(KernelHelpers.localLength(used)) >= used, "localLength(" + used + ")");
            assertTrue(KernelHelpers.ptxUsable(KernelHelpers.localLength(used) - 1) < used, "localLength(" + used + ") is the least");
        }
        assertTrue(KernelHelpers.ptxUsable(KernelHelpers.Q8_CHUNK_LOCAL_INTS) >= KernelHelpers.Q8_CHUNK_INTS);
        assertTrue(KernelHelpers.ptxUsable(KernelHelpers.Q8_CHUNK_LOCAL_SCALES) >= KernelHelpers.Q8_CHUNK_GROUPS);
        // the reduction scratch (MAX_LOCAL) holds a PTX work-group (at most 128)
        assertTrue(KernelHelpers.ptxUsable(TransformerKernels.MAX_LOCAL) >= DeviceSelection.PTX_MAX_LOCAL);
    }

    /**
     * TornadoVM's own failures on the way to a first execution become one clear error (exit 3); the one a setting
     * causes (TornadoVM 5.2 cannot grow a task graph past 1,024 nodes: too many layers per graph) names the setting.
     * TornadoInternalError is an Error, not an exception: it used to end the program with a stack trace.
     */
    @Test
    void tornadoFailuresBecomeOneErrorNamingTheSettingToChange() {
        DeviceSession session = DeviceSession.open(null);
        io.github.llama2j.Llama2jException e = org.junit.jupiter.api.Assertions.assertThrows(io.github.llama2j.Llama2jException.class,
                () -> session.guarded("the forward pass", null, () -> {
                    throw new uk.ac.manchester.tornado.api.exceptions.TornadoInternalError(
                            "unimplemented: Tornado Graph resize not implemented yet.");
                }));
        assertEquals(io.github.llama2j.Llama2jException.UNAVAILABLE, e.exitCode());
        assertTrue(e.getMessage().contains("graph.layers") && e.getMessage().contains("1,024 nodes"), e.getMessage());
        e = org.junit.jupiter.api.Assertions.assertThrows(io.github.llama2j.Llama2jException.class,
                () -> session.guarded("the forward pass", null, () -> {
                    throw new IllegalStateException("driver said no");
                }));
        assertTrue(e.getMessage().contains("driver said no") && !e.getMessage().contains("graph.layers"), e.getMessage());
    }

    /** The split attention's local arrays on PTX: a 7B-shaped model (q_dim 4,096) keeps one work-group per head there. */
    @Test
    void theSplitAttentionIsUsedOnPtxOnlyWhereItsLocalArraysHoldTheInput() {
        TornadoSettings s = TornadoSettings.load("CPU").withAttentionSplit(8, 64);
        Configuration big = new Configuration(4096, 11008, 32, 32, 32, 32000, 2048, true, 0);
        Configuration small = new Configuration(768, 2048, 12, 12, 12, 32000, 1024, true, 0);
        assertEquals(8, ForwardGraph.attentionSplits(big, s, false));
        assertEquals(1, ForwardGraph.attentionSplits(big, s, true), "on PTX 2,044 of its 4,096 inputs and 252 of its 32 × 9 weights fit");
        assertEquals(8, ForwardGraph.attentionSplits(small, s, true));
    }
}
