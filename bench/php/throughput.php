<?php declare(strict_types=1);
/**
 * The `php` row of bench/throughput.py: the official PHP SDK (wechatpay/wechatpay, on Guzzle 7
 * and curl) sending the same signed APIv3 POST as the Python rows, one scenario per process.
 *
 *     echo '{"sdk": "/opt/wechatpay-php/autoload.php", "scenario": "seq", "concurrency": 1,
 *            "duration": 3, "warmup": 200, "server_pid": 1234, "options": {...}}' \
 *         | php bench/php/throughput.php
 *
 * `options` is what the benchmark server prints: mchid, serial, private_key (PEM),
 * certs ({serial or public key id: PEM certificate or public key}) and base_url. The client is
 * built as the SDK's README shows (`Builder::factory`); the SDK signs every request and
 * verifies every answer's signature itself (a failed check throws). `seq` sends one request at
 * a time with `->post()`; `c64` keeps `concurrency` `->postAsync()` promises in flight with
 * `GuzzleHttp\Promise\Each::ofLimit`. Both warm up first, then run for `duration` seconds.
 *
 * Prints one JSON line with the keys of the Python `Meter.stop()`: n, seconds, rate, cpu_us,
 * rss_mb, server_cpu, connections, errors (and first_error). With MAX_ERRORS or more failed
 * requests it prints {"error": ...} and exits 1, as a Python row does.
 *
 * This file uses the SDK's public API only; the SDK itself is not part of this repository.
 */

use GuzzleHttp\Promise\Each;
use Psr\Http\Message\ResponseInterface;
use WeChatPay\Builder;
use WeChatPay\BuilderChainable;
use WeChatPay\Crypto\Rsa;

const MAX_ERRORS = 20;
// The same request and answer as bench/throughput.py (which passes its own in the config).
const DEFAULT_PAYLOAD = [
    'appid' => 'wxd678efh567hg6787',
    'mchid' => '1900000001',
    'description' => 'Image形象店-深圳腾大-QQ公仔',
    'out_trade_no' => '1217752501201407033233368018',
    'time_expire' => '2018-06-08T10:34:56+08:00',
    'attach' => '自定义数据说明',
    'notify_url' => 'https://www.weixin.qq.com/wxpay/pay.php',
    'goods_tag' => 'WXG',
    'amount' => ['total' => 100, 'currency' => 'CNY'],
];
const DEFAULT_CODE_URL = 'weixin://wxpay/bz?pr=NwY5Mz9&groupid=00';

final class Bench
{
    /** @var list<string> */
    public array $errors = [];
    private float $t0 = 0.0;
    private float $c0 = 0.0;
    private float $s0 = 0.0;

    /** @param array<string,mixed> $payload */
    public function __construct(
        private BuilderChainable $instance,
        private array $payload,
        private string $codeUrl,
        private int $serverPid,
        private int $serverPort,
    ) {
    }

    /** One checked request, as a PHP user writes it. */
    public function send(): void
    {
        $response = $this->instance->v3->pay->transactions->native->post(['json' => $this->payload]);
        $this->check($response);
    }

    public function sendAsync(): \GuzzleHttp\Promise\PromiseInterface
    {
        return $this->instance->v3->pay->transactions->native->postAsync(['json' => $this->payload]);
    }

    public function check(ResponseInterface $response): void
    {
        $body = (string) $response->getBody();
        if ($response->getStatusCode() !== 200) {
            throw new RuntimeException(sprintf('answer %d: %s', $response->getStatusCode(), substr($body, 0, 300)));
        }
        $data = json_decode($body, true);
        if (!is_array($data) || ($data['code_url'] ?? null) !== $this->codeUrl) {
            throw new RuntimeException('unexpected answer body ' . substr($body, 0, 300));
        }
    }

    public function fail(Throwable $exc): void
    {
        $this->errors[] = get_class($exc) . ': ' . $exc->getMessage();
    }

    public function tooMany(): bool
    {
        return count($this->errors) >= MAX_ERRORS;
    }

    /** `count` requests one at a time (count 0: until `deadline`); returns the number done. */
    public function sequential(int $count, float $deadline): int
    {
        $done = 0;
        while (($count ? $done < $count : hrtime(true) / 1e9 < $deadline) && !$this->tooMany()) {
            try {
                $this->send();
                $done++;
            } catch (Throwable $exc) {
                $this->fail($exc);
            }
        }
        return $done;
    }

    /** `concurrency` promises in flight until `count` were started (count 0: until `deadline`). */
    public function concurrent(int $concurrency, int $count, float $deadline): int
    {
        $done = 0;
        $requests = function () use ($count, $deadline): Generator {
            $started = 0;
            while (($count ? $started < $count : hrtime(true) / 1e9 < $deadline) && !$this->tooMany()) {
                $started++;
                yield $this->sendAsync();
            }
        };
        Each::ofLimit(
            $requests(),
            $concurrency,
            function (ResponseInterface $response) use (&$done): void {
                try {
                    $this->check($response);
                    $done++;
                } catch (Throwable $exc) {
                    $this->fail($exc);
                }
            },
            function ($reason): void {
                $this->fail($reason instanceof Throwable ? $reason : new RuntimeException(var_export($reason, true)));
            },
        )->wait();
        return $done;
    }

    /** After the warm-up: too many failures there fail the row, a few are forgotten. */
    public function warmedUp(): void
    {
        if ($this->tooMany()) {
            throw new RuntimeException(sprintf('%d failed requests in the warm-up, first: %s', count($this->errors), $this->errors[0]));
        }
        $this->errors = [];
    }

    public function start(): void
    {
        @file_put_contents('/proc/self/clear_refs', '5');  // reset VmHWM to the current RSS
        $this->s0 = $this->serverCpu();
        $this->c0 = self::processCpu();
        $this->t0 = hrtime(true) / 1e9;
    }

    /** @return array<string,mixed> */
    public function stop(int $count): array
    {
        $elapsed = hrtime(true) / 1e9 - $this->t0;
        $cpu = self::processCpu() - $this->c0;
        $server = $this->serverCpu() - $this->s0;
        return [
            'n' => $count,
            'seconds' => round($elapsed, 3),
            'rate' => $count / $elapsed,
            'cpu_us' => $cpu / max($count, 1) * 1e6,
            'rss_mb' => self::peakRssMb(),
            'server_cpu' => $server / $elapsed,
            'connections' => $this->openConnections(),
        ];
    }

    private static function processCpu(): float
    {
        $r = getrusage();
        return $r['ru_utime.tv_sec'] + $r['ru_utime.tv_usec'] / 1e6
            + $r['ru_stime.tv_sec'] + $r['ru_stime.tv_usec'] / 1e6;
    }

    private function serverCpu(): float
    {
        $stat = @file_get_contents("/proc/{$this->serverPid}/stat");
        if ($stat === false) {
            return NAN;
        }
        $fields = preg_split('/\s+/', trim(substr($stat, strrpos($stat, ')') + 1)));
        return ((int) $fields[11] + (int) $fields[12]) / 100;  // utime + stime, CLK_TCK 100
    }

    private static function peakRssMb(): float
    {
        $status = @file_get_contents('/proc/self/status');
        if ($status !== false && preg_match('/^VmHWM:\s+(\d+)/m', $status, $m)) {
            return (int) $m[1] / 1024;
        }
        return getrusage()['ru_maxrss'] / 1024;
    }

    /** Established TCP connections to the server's port (the row runs alone). */
    private function openConnections(): int
    {
        $wanted = sprintf(':%04X', $this->serverPort);
        $count = 0;
        $lines = @file('/proc/self/net/tcp') ?: [];
        foreach (array_slice($lines, 1) as $line) {
            $fields = preg_split('/\s+/', trim($line));
            if (str_ends_with($fields[2], $wanted) && $fields[3] === '01') {
                $count++;
            }
        }
        return $count;
    }
}

function main(): int
{
    $config = json_decode((string) stream_get_contents(STDIN), true, 512, JSON_THROW_ON_ERROR);
    require_once $config['sdk'];
    $options = $config['options'];

    $certs = [];
    foreach ($options['certs'] as $serial => $pem) {
        $certs[(string) $serial] = Rsa::from($pem, Rsa::KEY_TYPE_PUBLIC);
    }
    $instance = Builder::factory([
        'mchid' => (string) $options['mchid'],
        'serial' => (string) $options['serial'],
        'privateKey' => Rsa::from($options['private_key'], Rsa::KEY_TYPE_PRIVATE),
        'certs' => $certs,
        'base_uri' => $options['base_url'],
    ]);
    $port = (int) parse_url($options['base_url'], PHP_URL_PORT);
    $bench = new Bench(
        $instance,
        $config['payload'] ?? DEFAULT_PAYLOAD,
        $config['code_url'] ?? DEFAULT_CODE_URL,
        (int) $config['server_pid'],
        $port,
    );

    $duration = (float) $config['duration'];
    $warmup = (int) $config['warmup'];
    $concurrency = (int) ($config['concurrency'] ?? ($config['scenario'] === 'seq' ? 1 : 64));

    if ($concurrency <= 1) {
        $bench->sequential(max($warmup, 2), INF);
        $bench->warmedUp();
        $bench->start();
        $count = $bench->sequential(0, hrtime(true) / 1e9 + $duration);
    } else {
        // as the async Python rows: at least two requests per slot before measuring
        $bench->concurrent($concurrency, max($warmup, $concurrency * 2), INF);
        $bench->warmedUp();
        $bench->start();
        $count = $bench->concurrent($concurrency, 0, hrtime(true) / 1e9 + $duration);
    }
    $result = $bench->stop($count);
    $result['errors'] = count($bench->errors);
    if ($bench->errors) {
        $result['first_error'] = substr($bench->errors[0], 0, 200);
    }
    if ($bench->tooMany()) {
        $result['error'] = sprintf('%d failed requests, first: %s', count($bench->errors), $result['first_error']);
        echo json_encode($result, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PARTIAL_OUTPUT_ON_ERROR), "\n";
        return 1;
    }
    echo json_encode($result, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_PARTIAL_OUTPUT_ON_ERROR), "\n";
    return 0;
}

try {
    exit(main());
} catch (Throwable $exc) {
    echo json_encode(['error' => get_class($exc) . ': ' . substr($exc->getMessage(), 0, 300)]), "\n";
    exit(1);
}
