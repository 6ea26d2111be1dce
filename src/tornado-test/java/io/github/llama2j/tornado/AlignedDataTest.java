package io.github.llama2j.tornado;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.types.arrays.ByteArray;
import uk.ac.manchester.tornado.api.types.arrays.FloatArray;
import uk.ac.manchester.tornado.api.types.arrays.HalfFloatArray;
import uk.ac.manchester.tornado.api.types.arrays.Int8Array;
import uk.ac.manchester.tornado.api.types.arrays.TornadoNativeArray;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Issue 10 item 4: the data of every weight array starts 128-byte aligned on the device. TornadoVM gives each
 * array its own device buffer, which starts on the device's base-address alignment, and puts the data after
 * its array header, on the device as on the host; the generated kernels index element i at
 * {@code header / elementSize + i} (TornadoNativeTypeElimination). The header is TornadoVM's
 * {@code tornado.panama.objectHeader}, 128 in tornado-config/llama2j-tornado.flags (TornadoVM's default is
 * 16). The kernels' results with it are the golden and CPU-comparison tests' business; this test checks the
 * two numbers the data start is the sum of. (A kernel cannot see its buffers' addresses, so the
 * alignment is shown by its parts, not observed.)
 */
@Tag("tornado")
class AlignedDataTest {

    @Test
    void arrayDataStartsAHundredAndTwentyEightBytesIntoEachBuffer() {
        assertEquals(128, TornadoNativeArray.ARRAY_HEADER, "tornado.panama.objectHeader from llama2j-tornado.flags");
        // the host segment has the same layout as the device buffer: header, then data
        for (TornadoNativeArray a : new TornadoNativeArray[]{new FloatArray(3), new Int8Array(5), new ByteArray(7),
                new HalfFloatArray(9)}) {
            long header = a.getSegmentWithHeader().byteSize() - a.getSegment().byteSize();
            assertEquals(128, header, a.getClass().getSimpleName());
            assertEquals(0, header % 128, a.getClass().getSimpleName());
        }
    }

    @Test
    void theDevicesBuffersStartOnAHundredAndTwentyEightByteBoundary() throws ReflectiveOperationException {
        Object physical = TornadoExecutionPlan.DEFAULT_DEVICE.getPhysicalDevice();
        // OpenCL: CL_DEVICE_MEM_BASE_ADDR_ALIGN, in bits (TornadoVM's OCLDevice; PoCL reports 1024)
        int bits = (int) physical.getClass().getMethod("getDeviceMemoryBaseAlignment").invoke(physical);
        assertTrue(bits >= 1024 && bits % 1024 == 0, "base address alignment " + bits + " bits");
        assertEquals(0, (TornadoNativeArray.ARRAY_HEADER * 8) % Math.min(bits, 1024),
                "data start = buffer base + header: a multiple of 128 bytes");
    }
}
