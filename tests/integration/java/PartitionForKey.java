// Prints the partition Kafka's own Java producer picks for each key (UTF-8), one per line.
// Run with the broker's jars: java -cp '.run/kafka/libs/*' PartitionForKey.java 12 key1 key2 ...
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;

public class PartitionForKey {
    public static void main(String[] args) {
        int partitions = Integer.parseInt(args[0]);
        for (int i = 1; i < args.length; i++) {
            byte[] key = args[i].getBytes(StandardCharsets.UTF_8);
            System.out.println(BuiltInPartitioner.partitionForKey(key, partitions));
        }
    }
}
